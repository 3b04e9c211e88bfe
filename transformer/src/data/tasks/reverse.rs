//! The `reverse` task: random letters → the letters backwards, "hello" → "olleh". Attention must
//! read the source from its end.

use rand::Rng;

use super::random_letters;
use crate::data::Example;

/// `text` with its characters in reverse order.
pub fn reverse(text: &str) -> String {
    text.chars().rev().collect()
}

/// One example: random letters → reversed.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Example {
    let letters = random_letters(rng);
    let reversed = reverse(&letters);
    Example::new(letters, reversed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn reverses() {
        assert_eq!(reverse("hello"), "olleh");
        assert_eq!(reverse("a"), "a");
        assert_eq!(reverse(""), "");
    }

    #[test]
    fn target_is_the_source_backwards() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..100 {
            let example = sample(&mut rng);
            assert_eq!(reverse(&example.target), example.source);
        }
    }
}
