//! Mutations of valid inputs: bytes (truncation, flips, junk, NUL, BOM, CRLF), JSON structure
//! (wrong types, huge and negative numbers, missing, duplicated and extra entries), text lines
//! (missing and extra tabs, lines longer than any model) and safetensors files (the header as
//! JSON, its length prefix, the data).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Values a field should never be trusted to hold: huge, negative, fractional, of the wrong
/// type, or outside JSON altogether. Written raw into the text, so `1e999` stays a number that
/// overflows and `NaN` is invalid JSON.
const WEIRD: &[&str] = &[
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "-9223372036854775808",
    "0",
    "1",
    "2",
    "3",
    "4",
    "7",
    "16",
    "32",
    "65536",
    "65537",
    "1048576",
    "1048577",
    "4294967297",
    "1e308",
    "1e999",
    "-1e308",
    "1e-320",
    "0.5",
    "-0.0",
    "2.5",
    "NaN",
    "\"\"",
    "\"relu\"",
    "\"gelu\"",
    "\"learned\"",
    "\"sinusoidal\"",
    "\"decoder_only\"",
    "\"encoder_decoder\"",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "[1, 2]",
    "[0]",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"ab\"",
    "\"<pad>\"",
    "\"\\u00e9\"",
    "\"F64\"",
    "\"F16\"",
    "\"I64\"",
    "\"BOOL\"",
    "[4294967296, 4294967296]",
    "[18446744073709551615]",
    "[0, 18446744073709551615]",
];

/// A deterministic source of mutations.
pub struct Mutator {
    rng: StdRng,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Mutator { rng: StdRng::seed_from_u64(seed) }
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.rng.random_range(0..n) }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn weird(&mut self) -> &'static str {
        WEIRD[self.below(WEIRD.len())]
    }

    /// One to three byte-level mutations.
    pub fn bytes(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(3) {
            let at = self.below(out.len() + 1);
            match self.below(9) {
                0 => out.truncate(at),
                1 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                2 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] = self.rng.random();
                }
                3 => {
                    let junk: Vec<u8> = (0..1 + self.below(8)).map(|_| self.rng.random()).collect();
                    out.splice(at..at, junk);
                }
                4 => out.splice(at..at, [0u8]).for_each(drop),
                5 => out.splice(0..0, "\u{feff}".bytes()).for_each(drop),
                6 => out = String::from_utf8_lossy(&out).replace('\n', "\r\n").into_bytes(),
                7 => {
                    let end = (at + self.below(16)).min(out.len());
                    out.drain(at..end);
                }
                _ => {
                    let end = (at + self.below(32)).min(out.len());
                    let copy = out[at..end].to_vec();
                    out.splice(at..at, copy);
                }
            }
        }
        out
    }

    /// A structural mutation of JSON text (a value replaced, removed, duplicated or added,
    /// anywhere up to three levels deep), or now and then a byte-level one.
    pub fn json(&mut self, input: &str) -> Vec<u8> {
        if self.chance(0.2) {
            return self.bytes(input.as_bytes());
        }
        let Ok(mut value) = serde_json::from_str::<Value>(input) else { return self.bytes(input.as_bytes()) };
        let raw = self.weird();
        let placeholder = "\u{1}weird\u{1}";
        self.mutate_value(&mut value, placeholder, 0);
        let text = value.to_string().replace(&format!("\"{placeholder}\""), raw);
        text.into_bytes()
    }

    fn mutate_value(&mut self, value: &mut Value, placeholder: &str, depth: usize) {
        let descend = depth < 3 && self.chance(0.6);
        match value {
            Value::Object(map) if !map.is_empty() => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = keys[self.below(keys.len())].clone();
                if descend && (map[&key].is_object() || map[&key].is_array()) {
                    return self.mutate_value(map.get_mut(&key).unwrap(), placeholder, depth + 1);
                }
                match self.below(4) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        map.insert(format!("{key}_extra"), Value::String(placeholder.into()));
                    }
                    _ => {
                        map.insert(key, Value::String(placeholder.into()));
                    }
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let i = self.below(items.len());
                if descend && (items[i].is_object() || items[i].is_array()) {
                    return self.mutate_value(&mut items[i], placeholder, depth + 1);
                }
                match self.below(6) {
                    0 => {
                        items.remove(i);
                    }
                    1 => {
                        let copy = items[i].clone();
                        items.insert(self.below(items.len() + 1), copy);
                    }
                    2 => {
                        let j = self.below(items.len());
                        items.swap(i, j);
                    }
                    3 => items.truncate(i),
                    _ => items[i] = Value::String(placeholder.into()),
                }
            }
            _ => *value = Value::String(placeholder.into()),
        }
    }

    /// Line-level mutations of a text (a line dropped, doubled, cut at or around its tab, made
    /// longer than any model's positions, or given extra tabs), then maybe byte-level ones.
    pub fn lines(&mut self, input: &str) -> Vec<u8> {
        let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
        for _ in 0..1 + self.below(2) {
            if lines.is_empty() {
                break;
            }
            let i = self.below(lines.len());
            match self.below(7) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let copy = lines[i].clone();
                    lines.insert(i, copy);
                }
                2 => lines[i] = lines[i].replace('\t', ""),
                3 => lines[i].push_str("\textra\tfields"),
                4 => lines[i] = "x".repeat(1 + self.below(3000)) + "\t" + &"y".repeat(self.below(300)),
                5 => lines.insert(i, String::new()),
                _ => lines[i] = "\u{10ffff}\u{0}\u{feff}".repeat(1 + self.below(5)) + &lines[i],
            }
        }
        let text = lines.join("\n") + if self.chance(0.5) { "\n" } else { "" };
        if self.chance(0.3) { self.bytes(text.as_bytes()) } else { text.into_bytes() }
    }

    /// A mutation of a safetensors file: its header as JSON (shapes, dtypes, offsets, names),
    /// its 8-byte length prefix, or its bytes.
    pub fn safetensors(&mut self, input: &[u8]) -> Vec<u8> {
        let n = u64::from_le_bytes(input[..8].try_into().unwrap()) as usize;
        let (header, data) = (&input[8..8 + n], &input[8 + n..]);
        match self.below(5) {
            0 | 1 => {
                let header = self.json(std::str::from_utf8(header).unwrap());
                [&(header.len() as u64).to_le_bytes()[..], &header, data].concat()
            }
            2 => {
                let prefix: u64 = match self.below(5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => n as u64 + 1 + self.below(64) as u64,
                    3 => n.saturating_sub(1 + self.below(8)) as u64,
                    _ => 1 << (20 + self.below(40)),
                };
                [&prefix.to_le_bytes()[..], &input[8..]].concat()
            }
            3 => {
                // Only the data: the weights may become NaN or infinite, which must still run.
                let mut out = input.to_vec();
                for _ in 0..1 + self.below(8) {
                    let i = 8 + n + self.below(data.len());
                    out[i] = self.rng.random();
                }
                out
            }
            _ => self.bytes(input),
        }
    }
}
