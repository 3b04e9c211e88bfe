//! 01: tensors — making them, their shapes, broadcasting, printing, and seeded random values.
//!
//! Run it with `cargo run --release --example 01_tensors`.
//!
//! A `Tensor` is the engine's plain array: numbers in one contiguous row-major buffer plus a
//! shape. Nothing here records anything or computes a gradient; that starts in example 02. Every
//! op you see on tensors exists with the same name on tape values (`Var`) too.

use autograd::rand::SeedableRng; // the engine re-exports `rand`, so we use the same version
use autograd::rand::rngs::StdRng; // a seedable generator: the same seed gives the same numbers
use autograd::{Element, Shape, Tensor};

fn main() {
    // ANCHOR: create
    // From a Vec and a shape. The numbers are read row by row (row-major), so this is
    // [[1, 2, 3],
    //  [4, 5, 6]].
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    // Filled tensors. The element type is f32 unless you ask for another (f64 is the other one).
    let zeros = Tensor::<f32>::zeros([2, 3]);
    let ones = Tensor::<f32>::ones([3]);
    let sevens = Tensor::<f32>::full([2, 2], 7.0);
    // [0, 1, ..., n-1], and a tensor whose element at flat index i is f(i).
    let range = Tensor::<f32>::arange(5);
    let squares = Tensor::<f32>::from_fn([2, 3], |i| (i * i) as f32);
    // A scalar has shape [] (no dimensions) and holds exactly one value.
    let pi = Tensor::<f32>::scalar(std::f32::consts::PI);
    // ANCHOR_END: create

    // `Display` prints like NumPy: nested brackets, aligned decimal points, the shape and dtype.
    show("a", &a);
    show("zeros", &zeros);
    show("ones", &ones);
    show("sevens", &sevens);
    show("range", &range);
    show("squares", &squares);
    show("pi", &pi);
    assert_eq!(squares.to_vec(), vec![0.0, 1.0, 4.0, 9.0, 16.0, 25.0]);
    assert_eq!(pi.item(), std::f32::consts::PI); // `item` reads the only value of a 1-element tensor

    // ANCHOR: shapes
    // A shape is a list of dimensions, outermost first.
    assert_eq!(a.dims(), &[2, 3]); // 2 rows, 3 columns
    assert_eq!(a.rank(), 2); // two dimensions
    assert_eq!(a.numel(), 6); // 2 × 3 numbers
    assert_eq!(pi.rank(), 0); // a scalar: no dimensions, one number
    // Strides say how far apart neighbours along each dimension are in the flat buffer:
    // the next row is 3 numbers further on, the next column 1.
    assert_eq!(a.shape().strides().as_slice(), &[3, 1]);
    // `at` reads one element by its multi-dimensional index: row 1, column 2.
    assert_eq!(a.at(&[1, 2]), 6.0);
    // Reshaping keeps the numbers in the same order and only changes how they are grouped.
    // It copies nothing: the new tensor shares the old one's buffer.
    let col = a.reshape([6, 1]);
    assert_eq!(col.dims(), &[6, 1]);
    assert!(col.shares_buffer(&a));
    // A transpose does move numbers: tensors here are always contiguous.
    let at = a.transpose(0, 1);
    assert_eq!(at.dims(), &[3, 2]);
    assert_eq!(at.to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // ANCHOR_END: shapes
    show("a reshaped to [6, 1]", &col);
    show("a transposed", &at);

    // ANCHOR: broadcasting
    // Binary ops broadcast like NumPy and PyTorch: line the shapes up from the right; each pair
    // of dimensions must be equal, or one of them 1 (or missing), which is then repeated.
    //
    // [2, 3] + [3]: the row vector is added to every row.
    let row = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3]);
    let a_plus_row = &a + &row;
    assert_eq!(a_plus_row.to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    // [2, 1] * [1, 3] → [2, 3]: both sides repeat, which makes an outer product.
    let u = Tensor::from_vec(vec![1.0f32, 2.0], [2, 1]);
    let v = Tensor::from_vec(vec![1.0f32, 10.0, 100.0], [1, 3]);
    let outer = &u * &v;
    assert_eq!(outer.to_vec(), vec![1.0, 10.0, 100.0, 2.0, 20.0, 200.0]);
    // The rule itself lives on `Shape`: which shape two shapes broadcast to, if any.
    assert_eq!(Shape::from([2, 1]).broadcast(&Shape::from([1, 3])), Some(Shape::from([2, 3])));
    assert_eq!(Shape::from([2, 3]).broadcast(&Shape::from([2])), None); // 3 vs 2: no fit
    // A scalar of the element type broadcasts everywhere.
    let shifted = &a + 0.5;
    assert_eq!(shifted.at(&[0, 0]), 1.5);
    // ANCHOR_END: broadcasting
    show("a + row", &a_plus_row);
    show("u * v (outer product)", &outer);

    // A few of the other ops, which all return new tensors.
    // Sum over axis 1 (the columns) gives one number per row; keepdim keeps that axis as size 1.
    assert_eq!(a.sum(&[1], false).to_vec(), vec![6.0, 15.0]);
    assert_eq!(a.sum(&[1], true).dims(), &[2, 1]);
    // Negative axes count from the end, as in Python: -1 is the last axis.
    assert_eq!(a.mean(&[-1], false).to_vec(), vec![2.0, 5.0]);
    assert_eq!(a.sum_all().item(), 21.0);
    // The matrix product [2, 3] · [3, 2] → [2, 2].
    let gram = a.matmul(&at);
    assert_eq!(gram.to_vec(), vec![14.0, 32.0, 32.0, 77.0]);
    // Softmax along the last axis: every row becomes positive numbers that sum to 1. Both rows
    // print the same, because softmax ignores a constant added to a whole row (row 2 = row 1 + 3).
    let p = a.softmax(-1);
    let row_sums = p.sum(&[-1], false);
    assert!(row_sums.to_vec().iter().all(|s| (s - 1.0).abs() < 1e-6));
    show("a · aᵀ", &gram);
    show("softmax(a)", &p);

    // ANCHOR: random
    // Random tensors take the generator as an argument, so a seed makes a run repeatable.
    let mut rng = StdRng::seed_from_u64(42);
    let noise = Tensor::<f32>::randn([3, 4], 0.0, 1.0, &mut rng); // normal, mean 0, std 1
    let uniform = Tensor::<f32>::rand_uniform([3, 4], -1.0, 1.0, &mut rng); // in [-1, 1)
    // Seeding a second generator the same way reproduces the same numbers bit for bit.
    let mut again = StdRng::seed_from_u64(42);
    assert!(noise.bit_eq(&Tensor::randn([3, 4], 0.0, 1.0, &mut again)));
    assert!(uniform.to_vec().iter().all(|x| (-1.0..1.0).contains(x)));
    // ANCHOR_END: random
    show("randn (seed 42)", &noise);
    show("rand_uniform", &uniform);

    // Long dimensions are shortened in print: the first and last three entries, `...` between.
    let long = Tensor::<f64>::arange(100).reshape([10, 10]);
    show("a 10 × 10 tensor of f64", &long);
    examples::book_output("01_print.txt", &format!("{a}\n\n{long}\n")); // the book shows these two
    // Converting between element types rounds f64 to the nearest f32.
    assert_eq!(long.cast::<f32>().at(&[9, 9]), 99.0);

    println!("01_tensors: all checks passed");
}

/// Prints a label, then the tensor on its own lines so its rows stay aligned.
fn show<T: Element>(label: &str, t: &Tensor<T>) {
    println!("{label} =\n{t}\n");
}
