//! Data files: UTF-8 TSV, one `source<TAB>target` example a line, read into [`Example`]s.

use std::path::Path;

use crate::error::{Error, Result};

/// One training pair: the text to translate and its translation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Example {
    /// The input text, e.g. `"Mar 3, 21"`.
    pub source: String,
    /// The expected output text, e.g. `"2021-03-03"`.
    pub target: String,
}

impl Example {
    /// An example from its two texts.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Example {
        Example { source: source.into(), target: target.into() }
    }
}

/// What every line must look like; repeated in each line error.
const EXPECTED: &str = "expected source<TAB>target";

/// Reads a TSV data file. Errors name the file and the 1-based line: a line without a tab or with
/// more than one, an empty line before the last example, invalid UTF-8, a file without examples,
/// a file that cannot be read. A trailing newline (or several), `\r\n` line ends and a UTF-8 byte
/// order mark are fine.
///
/// ```no_run
/// let examples = transformer::data::read_tsv(std::path::Path::new("dates.tsv"))?;
/// println!("{} examples, the first: {:?}", examples.len(), examples[0]);
/// # Ok::<(), transformer::Error>(())
/// ```
pub fn read_tsv(path: &Path) -> Result<Vec<Example>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        Error::line(path, line, "invalid UTF-8; expected a UTF-8 text file")
    })?;
    parse_tsv(text, path)
}

/// Parses the text of a TSV data file, with the same rules and errors as [`read_tsv`]; `path`
/// only names the file in errors.
///
/// ```
/// use std::path::Path;
/// use transformer::data::{parse_tsv, Example};
///
/// let examples = parse_tsv("Mar 3, 21\t2021-03-03\n", Path::new("dates.tsv"))?;
/// assert_eq!(examples, [Example::new("Mar 3, 21", "2021-03-03")]);
///
/// let error = parse_tsv("a\tb\nno tab here\n", Path::new("dates.tsv")).unwrap_err();
/// assert_eq!(error.to_string(), "dates.tsv:2: expected source<TAB>target, found no tab");
/// # Ok::<(), transformer::Error>(())
/// ```
pub fn parse_tsv(text: &str, path: &Path) -> Result<Vec<Example>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect();
    // Blank lines after the last example are only line ends; anywhere else they are a mistake.
    let n_lines = lines.iter().rposition(|line| !line.is_empty()).map_or(0, |last| last + 1);
    let mut examples = Vec::with_capacity(n_lines);
    for (i, line) in lines[..n_lines].iter().enumerate() {
        let mut fields = line.split('\t');
        let (Some(source), Some(target), None) = (fields.next(), fields.next(), fields.next()) else {
            let found = match line.matches('\t').count() {
                0 if line.is_empty() => "an empty line".to_string(),
                0 => "no tab".to_string(),
                tabs => format!("{tabs} tabs"),
            };
            return Err(Error::line(path, i + 1, format!("{EXPECTED}, found {found}")));
        };
        examples.push(Example::new(source, target));
    }
    if examples.is_empty() {
        return Err(Error::file(path, format!("has no examples; {EXPECTED} on each line")));
    }
    Ok(examples)
}

/// Writes examples as a TSV data file that [`read_tsv`] reads back unchanged. A source or target
/// holding a tab or a line break cannot be written as one line and is an error.
pub fn write_tsv(path: &Path, examples: &[Example]) -> Result<()> {
    let mut text = String::with_capacity(examples.iter().map(|e| e.source.len() + e.target.len() + 2).sum());
    for (i, example) in examples.iter().enumerate() {
        for field in [&example.source, &example.target] {
            if field.contains(['\t', '\n', '\r']) {
                return Err(Error::file(
                    path,
                    format!("cannot write example {} ({field:?}): a tab or line break cannot be in a TSV field", i + 1),
                ));
            }
        }
        text.push_str(&example.source);
        text.push('\t');
        text.push_str(&example.target);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::file(path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Example>> {
        parse_tsv(text, Path::new("data/train.tsv"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("transformer-tsv-{}-{name}", std::process::id()))
    }

    #[test]
    fn reads_one_example_a_line() {
        let examples = parse("3 March 2021\t2021-03-03\n1984\tone thousand nine hundred eighty-four").unwrap();
        assert_eq!(
            examples,
            [Example::new("3 March 2021", "2021-03-03"), Example::new("1984", "one thousand nine hundred eighty-four")]
        );
    }

    #[test]
    fn trailing_newlines_crlf_and_bom_are_fine() {
        let expected = [Example::new("a", "b"), Example::new("c", "d")];
        assert_eq!(parse("a\tb\nc\td\n").unwrap(), expected);
        assert_eq!(parse("a\tb\nc\td\n\n\n").unwrap(), expected);
        assert_eq!(parse("a\tb\r\nc\td\r\n").unwrap(), expected);
        assert_eq!(parse("\u{feff}a\tb\nc\td").unwrap(), expected);
    }

    #[test]
    fn fields_keep_their_spaces_and_may_be_empty() {
        assert_eq!(
            parse(" a \t b\n\tx\ny\t\n").unwrap(),
            [Example::new(" a ", " b"), Example::new("", "x"), Example::new("y", "")]
        );
    }

    #[test]
    fn line_errors_name_file_and_line() {
        assert_eq!(error("a\tb\nno tab\n"), "data/train.tsv:2: expected source<TAB>target, found no tab");
        assert_eq!(error("a\tb\tc\n"), "data/train.tsv:1: expected source<TAB>target, found 2 tabs");
        assert_eq!(error("a\tb\n\nc\td\n"), "data/train.tsv:2: expected source<TAB>target, found an empty line");
    }

    #[test]
    fn a_file_without_examples_is_an_error() {
        let expected = "data/train.tsv: has no examples; expected source<TAB>target on each line";
        assert_eq!(error(""), expected);
        assert_eq!(error("\n\n"), expected);
        assert_eq!(error("\r\n"), expected);
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let path = temp_path("latin1.tsv");
        std::fs::write(&path, b"a\tb\nc\td\ncaf\xe9\tcafe\n").unwrap();
        let message = read_tsv(&path).unwrap_err().to_string();
        assert_eq!(message, format!("{}:3: invalid UTF-8; expected a UTF-8 text file", path.display()));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let message = read_tsv(Path::new("/nonexistent/train.tsv")).unwrap_err().to_string();
        assert!(message.starts_with("/nonexistent/train.tsv: cannot read: "), "{message}");
    }

    #[test]
    fn write_then_read_round_trips() {
        let path = temp_path("round-trip.tsv");
        let examples = vec![Example::new("Wednesday, March 3rd 2021", "2021-03-03"), Example::new("é", "日本")];
        write_tsv(&path, &examples).unwrap();
        assert_eq!(read_tsv(&path).unwrap(), examples);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn write_refuses_fields_that_break_lines() {
        let path = temp_path("bad.tsv");
        let message = write_tsv(&path, &[Example::new("a", "b"), Example::new("c\td", "e")]).unwrap_err().to_string();
        assert!(message.ends_with("cannot write example 2 (\"c\\td\"): a tab or line break cannot be in a TSV field"));
        assert!(!path.exists());
    }
}
