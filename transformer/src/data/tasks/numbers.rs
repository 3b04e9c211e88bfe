//! The `numbers` task: an integer 0–999,999 → American English words, "1984" → "one thousand nine
//! hundred eighty-four" (tens and units hyphenated, no "and").

use rand::Rng;

use crate::data::Example;

/// One past the largest number the task writes.
pub const LIMIT: u32 = 1_000_000;

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// `n` in American English words, or `None` from one million up.
///
/// ```
/// use transformer::data::tasks::numbers::to_words;
///
/// assert_eq!(to_words(1984).unwrap(), "one thousand nine hundred eighty-four");
/// assert_eq!(to_words(1_000_000), None);
/// ```
pub fn to_words(n: u32) -> Option<String> {
    if n >= LIMIT {
        return None;
    }
    if n == 0 {
        return Some(ONES[0].to_string());
    }
    let (thousands, rest) = (n / 1000, n % 1000);
    let mut parts = Vec::new();
    if thousands > 0 {
        parts.push(below_thousand(thousands));
        parts.push("thousand".to_string());
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    Some(parts.join(" "))
}

/// 1–999: "nine hundred eighty-four".
fn below_thousand(n: u32) -> String {
    let (hundreds, rest) = (n / 100, n % 100);
    match (hundreds, rest) {
        (0, _) => below_hundred(rest),
        (_, 0) => format!("{} hundred", ONES[hundreds as usize]),
        _ => format!("{} hundred {}", ONES[hundreds as usize], below_hundred(rest)),
    }
}

/// 0–99: "eighty-four".
fn below_hundred(n: u32) -> String {
    let (tens, ones) = (n as usize / 10, n as usize % 10);
    match (tens, ones) {
        (0 | 1, _) => ONES[n as usize].to_string(),
        (_, 0) => TENS[tens].to_string(),
        _ => format!("{}-{}", TENS[tens], ONES[ones]),
    }
}

/// A number with a uniformly random count of digits (1–6), then uniform among those: small
/// numbers are as common as large ones, so "7" and "42" are learned as well as "318,266".
pub fn random_number<R: Rng + ?Sized>(rng: &mut R) -> u32 {
    let digits = rng.random_range(1..=6);
    let low = if digits == 1 { 0 } else { 10u32.pow(digits - 1) };
    rng.random_range(low..10u32.pow(digits))
}

/// One example: a random number's digits → its words.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Example {
    let n = random_number(rng);
    Example::new(n.to_string(), to_words(n).expect("random_number stays below one million"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn known_values() {
        let cases = [
            (0, "zero"),
            (7, "seven"),
            (10, "ten"),
            (13, "thirteen"),
            (19, "nineteen"),
            (20, "twenty"),
            (21, "twenty-one"),
            (40, "forty"),
            (99, "ninety-nine"),
            (100, "one hundred"),
            (101, "one hundred one"),
            (110, "one hundred ten"),
            (999, "nine hundred ninety-nine"),
            (1000, "one thousand"),
            (1001, "one thousand one"),
            (1984, "one thousand nine hundred eighty-four"),
            (2021, "two thousand twenty-one"),
            (10_000, "ten thousand"),
            (15_015, "fifteen thousand fifteen"),
            (100_000, "one hundred thousand"),
            (110_011, "one hundred ten thousand eleven"),
            (318_266, "three hundred eighteen thousand two hundred sixty-six"),
            (999_999, "nine hundred ninety-nine thousand nine hundred ninety-nine"),
        ];
        for (n, words) in cases {
            assert_eq!(to_words(n).as_deref(), Some(words), "{n}");
        }
    }

    #[test]
    fn one_million_is_out_of_range() {
        assert_eq!(to_words(1_000_000), None);
        assert_eq!(to_words(u32::MAX), None);
    }

    #[test]
    fn words_are_well_formed_everywhere() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..LIMIT).step_by(7).chain(0..1000) {
            let words = to_words(n).unwrap();
            assert!(words.split(' ').all(|word| !word.is_empty() && word != "and"), "{n}: {words}");
            assert!(!words.contains("zero") || n == 0, "{n}: {words}");
            assert!(seen.insert(words) || n < 1000, "two numbers share words");
        }
    }

    #[test]
    fn every_digit_count_is_drawn() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut counts = [0usize; 7];
        for _ in 0..6000 {
            let example = sample(&mut rng);
            assert_eq!(to_words(example.source.parse().unwrap()).unwrap(), example.target);
            counts[example.source.len()] += 1;
        }
        assert!(counts[1..].iter().all(|&c| c > 800), "{counts:?}");
    }
}
