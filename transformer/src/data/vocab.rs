//! `Vocab`: the character vocabulary — four special tokens, then one token per Unicode character —
//! and its `vocab.json` file `{ "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "a", ...] }`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Error, Result};

/// Id of `<pad>`: fills the rows of a batch up to its longest sequence; ignored by the loss.
pub const PAD: usize = 0;
/// Id of `<bos>`: the first decoder input, "begin translating".
pub const BOS: usize = 1;
/// Id of `<eos>`: ends every source and every target sequence.
pub const EOS: usize = 2;
/// Id of `<unk>`: stands for any character the vocabulary does not hold.
pub const UNK: usize = 3;

/// The four special tokens, in id order. Every vocabulary starts with exactly these.
pub const SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<unk>"];

/// A character vocabulary: a token's id is its index in [`Vocab::tokens`].
///
/// Ids 0–3 are [`PAD`], [`BOS`], [`EOS`] and [`UNK`]; every later token is one Unicode character.
///
/// ```
/// use transformer::data::{Vocab, BOS, EOS, UNK};
///
/// let vocab = Vocab::from_texts(["cab", "2021-03-03"]);
/// assert_eq!(vocab.len(), 4 + 8); // the specials, then "-0123abc"
/// assert_eq!(vocab.encode("a?c"), [9, UNK, 11]);
/// assert_eq!(vocab.decode(&[BOS, 9, 11, EOS, 10]), "ac"); // stops at <eos>
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<char, usize>,
}

impl Vocab {
    /// The vocabulary of every character in `texts`, in code-point order after the specials, so
    /// the same texts always give the same ids whatever order they come in.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vocab {
        let chars: BTreeSet<char> = texts.into_iter().flat_map(str::chars).collect();
        let tokens = SPECIALS.iter().map(|s| s.to_string()).chain(chars.into_iter().map(String::from)).collect();
        Vocab::from_tokens(tokens).expect("distinct single characters after the specials form a valid vocabulary")
    }

    /// The vocabulary of every character in the sources and targets of `examples`.
    pub fn from_examples(examples: &[super::Example]) -> Vocab {
        Vocab::from_texts(examples.iter().flat_map(|e| [e.source.as_str(), e.target.as_str()]))
    }

    /// A vocabulary with exactly these tokens: the four [`SPECIALS`], then distinct single
    /// characters. The error says which token breaks the rule.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Vocab> {
        Vocab::check(tokens).map_err(|message| Error::new(format!("vocabulary: {message}")))
    }

    /// Checks the rules; the error is a message without a file name, for the caller to place.
    fn check(tokens: Vec<String>) -> Result<Vocab, String> {
        if tokens.len() < SPECIALS.len() {
            return Err(format!(
                "has {} tokens; expected at least the four specials {}",
                tokens.len(),
                SPECIALS.join(", ")
            ));
        }
        for (id, (token, special)) in tokens.iter().zip(SPECIALS).enumerate() {
            if token != special {
                return Err(format!(
                    "token {id} is {token:?}, expected {special:?} (the first four tokens must be {})",
                    SPECIALS.join(", ")
                ));
            }
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate().skip(SPECIALS.len()) {
            let mut chars = token.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!("token {id} is {token:?}, expected exactly one character"));
            };
            if let Some(first) = ids.insert(c, id) {
                return Err(format!("token {id} is {token:?}, which is already token {first}"));
            }
        }
        Ok(Vocab { tokens, ids })
    }

    /// Number of tokens, specials included: the model's `vocab_size`.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: a vocabulary holds at least the four specials.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// All tokens; a token's id is its index.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The token with this id, or `None` past the end.
    pub fn token(&self, id: usize) -> Option<&str> {
        self.tokens.get(id).map(String::as_str)
    }

    /// The id of one character, [`UNK`] if the vocabulary does not hold it.
    pub fn id(&self, c: char) -> usize {
        self.ids.get(&c).copied().unwrap_or(UNK)
    }

    /// One id per character of `text` (unknown characters become [`UNK`]); no specials added.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        text.chars().map(|c| self.id(c)).collect()
    }

    /// The text of `ids` up to the first [`EOS`], skipping [`PAD`] and [`BOS`]. [`UNK`] and ids
    /// past the end of the vocabulary show as `<unk>`.
    pub fn decode(&self, ids: &[usize]) -> String {
        let mut text = String::with_capacity(ids.len());
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => {}
                _ => text.push_str(self.tokens.get(id).map_or(SPECIALS[UNK], String::as_str)),
            }
        }
        text
    }

    /// The `vocab.json` text: `{"tokens":["<pad>","<bos>","<eos>","<unk>",...]}` and a newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::json!({ "tokens": self.tokens }).to_string();
        json.push('\n');
        json
    }

    /// Parses `vocab.json` text; `path` only names the file in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Vocab> {
        let expected = r#"expected {"tokens": ["<pad>", "<bos>", "<eos>", "<unk>", ...]}"#;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::file(path, format!("not JSON ({e}); {expected}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(Error::file(path, format!("not a JSON object; {expected}")));
        };
        let Some(tokens) = object.get("tokens") else {
            return Err(Error::file(path, format!("no \"tokens\" field; {expected}")));
        };
        let serde_json::Value::Array(tokens) = tokens else {
            return Err(Error::file(path, "\"tokens\" is not an array; expected an array of strings"));
        };
        let tokens = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| match token {
                serde_json::Value::String(s) => Ok(s.clone()),
                other => Err(Error::file(path, format!("token {id} is {other}, expected a string"))),
            })
            .collect::<Result<Vec<String>>>()?;
        Vocab::check(tokens).map_err(|message| Error::file(path, message))
    }

    /// Writes `vocab.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::session::write_file_atomically(path, self.to_json().as_bytes())
    }

    /// Reads `vocab.json`; every problem is an error naming the file and what was expected.
    pub fn load(path: &Path) -> Result<Vocab> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::file(path, format!("not UTF-8 text ({e})")))?;
        Vocab::from_json(text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Vocab> {
        Vocab::from_json(text, Path::new("model/vocab.json"))
    }

    #[test]
    fn specials_come_first_then_sorted_chars() {
        let vocab = Vocab::from_texts(["cba", "ab c"]);
        assert_eq!(vocab.tokens(), ["<pad>", "<bos>", "<eos>", "<unk>", " ", "a", "b", "c"]);
        assert_eq!(vocab.len(), 8);
        assert!(!vocab.is_empty());
        assert_eq!(vocab.token(5), Some("a"));
        assert_eq!(vocab.token(8), None);
        assert_eq!(Vocab::from_texts(["ab c", "cba"]), vocab, "input order must not change the ids");
    }

    #[test]
    fn empty_texts_give_only_the_specials() {
        assert_eq!(Vocab::from_texts([]).tokens(), SPECIALS);
    }

    #[test]
    fn encode_maps_unknown_chars_to_unk() {
        let vocab = Vocab::from_texts(["abc"]);
        assert_eq!(vocab.encode("cax"), [6, 4, UNK]);
        assert_eq!(vocab.encode(""), Vec::<usize>::new());
    }

    #[test]
    fn non_ascii_chars_are_single_tokens() {
        let vocab = Vocab::from_texts(["é→日"]);
        assert_eq!(vocab.len(), 7);
        assert_eq!(vocab.decode(&vocab.encode("日é")), "日é");
    }

    #[test]
    fn decode_stops_at_eos_and_skips_pad_and_bos() {
        let vocab = Vocab::from_texts(["abc"]);
        assert_eq!(vocab.decode(&[BOS, 4, PAD, 5, EOS, 6]), "ab");
        assert_eq!(vocab.decode(&[4, UNK, 99]), "a<unk><unk>");
        assert_eq!(vocab.decode(&[EOS, 4]), "");
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = std::env::temp_dir().join(format!("transformer-vocab-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vocab.json");
        let vocab = Vocab::from_texts(["March 3rd, 2021 \"quoted\" \\ é"]);
        vocab.save(&path).unwrap();
        assert_eq!(Vocab::load(&path).unwrap(), vocab);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json = Vocab::from_texts(["ba"]).to_json();
        assert_eq!(json, "{\"tokens\":[\"<pad>\",\"<bos>\",\"<eos>\",\"<unk>\",\"a\",\"b\"]}\n");
        assert_eq!(load_text(&json).unwrap().tokens().len(), 6);
    }

    #[test]
    fn load_errors_name_the_file_and_what_was_expected() {
        let cases = [
            ("[1, 2", "model/vocab.json: not JSON"),
            ("[\"<pad>\"]", "model/vocab.json: not a JSON object"),
            ("{\"words\": []}", "model/vocab.json: no \"tokens\" field"),
            ("{\"tokens\": \"abc\"}", "model/vocab.json: \"tokens\" is not an array"),
            ("{\"tokens\": [\"<pad>\", 7]}", "model/vocab.json: token 1 is 7, expected a string"),
            ("{\"tokens\": [\"<pad>\", \"<bos>\"]}", "model/vocab.json: has 2 tokens; expected at least"),
            (
                "{\"tokens\": [\"<pad>\", \"<eos>\", \"<bos>\", \"<unk>\"]}",
                "model/vocab.json: token 1 is \"<eos>\", expected \"<bos>\"",
            ),
            (
                "{\"tokens\": [\"<pad>\", \"<bos>\", \"<eos>\", \"<unk>\", \"ab\"]}",
                "model/vocab.json: token 4 is \"ab\", expected exactly one character",
            ),
            (
                "{\"tokens\": [\"<pad>\", \"<bos>\", \"<eos>\", \"<unk>\", \"\"]}",
                "model/vocab.json: token 4 is \"\", expected exactly one character",
            ),
            (
                "{\"tokens\": [\"<pad>\", \"<bos>\", \"<eos>\", \"<unk>\", \"a\", \"b\", \"a\"]}",
                "model/vocab.json: token 6 is \"a\", which is already token 4",
            ),
        ];
        for (text, expected) in cases {
            let message = load_text(text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text}\n  gave {message}\n  expected {expected}...");
            assert!(!message.contains('\n'), "one-line errors only: {message}");
        }
    }

    #[test]
    fn load_reports_missing_and_non_utf8_files() {
        let missing = Vocab::load(Path::new("/nonexistent/vocab.json")).unwrap_err().to_string();
        assert!(missing.starts_with("/nonexistent/vocab.json: cannot read"), "{missing}");

        let path = std::env::temp_dir().join(format!("transformer-vocab-latin1-{}.json", std::process::id()));
        std::fs::write(&path, b"{\"tokens\": [\"\xe9\"]}").unwrap();
        let message = Vocab::load(&path).unwrap_err().to_string();
        assert!(message.contains("not UTF-8 text"), "{message}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn from_tokens_checks_the_rules() {
        let tokens = |extra: &[&str]| SPECIALS.iter().chain(extra).map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Vocab::from_tokens(tokens(&["z", "a"])).unwrap().encode("az"), [5, 4]);
        let message = Vocab::from_tokens(tokens(&["x", "x"])).unwrap_err().to_string();
        assert_eq!(message, "vocabulary: token 5 is \"x\", which is already token 4");
    }
}
