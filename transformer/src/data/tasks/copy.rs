//! The `copy` task: random letters → the same letters, "hello" → "hello". The simplest task:
//! the decoder only has to attend to the right source position.

use rand::Rng;

use super::random_letters;
use crate::data::Example;

/// One example: random letters → themselves.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Example {
    let letters = random_letters(rng);
    Example::new(letters.clone(), letters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn target_is_the_source() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..100 {
            let example = sample(&mut rng);
            assert!(!example.source.is_empty());
            assert_eq!(example.target, example.source);
        }
    }
}
