//! The `sort` task: random letters → the letters in alphabetical order, "hello" → "ehllo". Each
//! output position depends on the whole source, not on one place in it.

use rand::Rng;

use super::random_letters;
use crate::data::Example;

/// `text` with its characters sorted (by code point; alphabetical for lowercase letters).
pub fn sort(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.into_iter().collect()
}

/// One example: random letters → sorted.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Example {
    let letters = random_letters(rng);
    let sorted = sort(&letters);
    Example::new(letters, sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn sorts() {
        assert_eq!(sort("hello"), "ehllo");
        assert_eq!(sort("zyxa"), "axyz");
        assert_eq!(sort(""), "");
    }

    #[test]
    fn target_is_the_sorted_source() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..100 {
            let example = sample(&mut rng);
            let target: Vec<char> = example.target.chars().collect();
            assert!(target.windows(2).all(|w| w[0] <= w[1]), "{example:?}");
            assert_eq!(sort(&example.source), example.target);
        }
    }
}
