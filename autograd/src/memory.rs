//! What a tape holds in memory: the bytes of its values, by op and by source line, and the peak
//! held during the last backward pass.

use crate::tape::Origin;
use crate::{Element, Tape};
use std::collections::HashMap;
use std::fmt;

/// The memory a tape's values hold, made by [`Tape::memory`]. A buffer shared by several values
/// (a reshape shares its input's) is counted once, for the first value that holds it.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f32>::new();
/// let x = tape.var(Tensor::zeros([256]));           // 1 KiB
/// let y = (x * x).reshape([16, 16]);                // mul: 1 KiB; the reshape shares it
/// let report = tape.memory();
/// assert_eq!((report.values, report.bytes), (3, 2048));
/// y.sum_all().backward();                           // frees the product once its rule ran
/// let after = tape.memory();
/// assert_eq!((after.bytes, after.freed), (1024 + 4, 2)); // x and the loss are kept
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Bytes held by the values on the tape now.
    pub bytes: usize,
    /// How many nodes hold a value.
    pub values: usize,
    /// How many values backward has freed.
    pub freed: usize,
    /// Bytes and values per op name (leaves by kind: `var`, `param`, ...), largest first.
    pub by_op: Vec<MemoryUse>,
    /// Bytes and values per source line of the call that recorded them, largest first.
    pub by_location: Vec<MemoryUse>,
    /// The most bytes held at once by values and gradients during the last backward pass, if
    /// [`Tape::set_track_memory`] was on for it.
    pub backward_peak: Option<usize>,
}

/// One line of a [`MemoryReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// An op name, or a source location `file:line`.
    pub name: String,
    /// How many values.
    pub values: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// `bytes` for a person: exact below 1 KiB, then KiB or MiB with one decimal.
pub(crate) fn human(bytes: usize) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// `n noun`, with an `s` unless `n` is 1: `1 value`, `3 values`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Lines shown per table by the report's `Display`.
const SHOWN: usize = 12;

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hold {}", plural(self.values, "value"), human(self.bytes))?;
        if self.freed > 0 {
            write!(f, "; backward freed {} more", self.freed)?;
        }
        if let Some(peak) = self.backward_peak {
            write!(f, "; peak during backward {}", human(peak))?;
        }
        for (title, lines) in [("by op", &self.by_op), ("by source line", &self.by_location)] {
            write!(f, "\n{title}:")?;
            let width = lines.iter().take(SHOWN).map(|l| l.name.chars().count()).max().unwrap_or(0);
            for l in lines.iter().take(SHOWN) {
                write!(f, "\n  {:<width$}  {:>10}  in {}", l.name, human(l.bytes), plural(l.values, "value"))?;
            }
            if lines.len() > SHOWN {
                let rest: usize = lines[SHOWN..].iter().map(|l| l.bytes).sum();
                write!(f, "\n  ... {} more, {}", lines.len() - SHOWN, human(rest))?;
            }
        }
        Ok(())
    }
}

impl<T: Element> Tape<T> {
    /// What the values on this tape hold in memory now, by op and by source line, and the peak
    /// of the last backward pass if it was measured ([`Tape::set_track_memory`]).
    pub fn memory(&self) -> MemoryReport {
        let mut seen: HashMap<usize, ()> = HashMap::new();
        let (mut by_op, mut by_location): (HashMap<String, MemoryUse>, HashMap<String, MemoryUse>) = Default::default();
        let (mut bytes, mut values, mut freed) = (0, 0, 0);
        self.with_nodes(|nodes| {
            for n in nodes {
                let Some(value) = &n.value else {
                    freed += 1;
                    continue;
                };
                values += 1;
                let b = if seen.insert(value.buffer_key(), ()).is_none() { value.bytes() } else { 0 };
                bytes += b;
                let op = match &n.origin {
                    Origin::Op(op) => op.name().to_string(),
                    Origin::Leaf { kind, .. } => kind.as_str().to_string(),
                };
                for (table, key) in [(&mut by_op, op), (&mut by_location, crate::graph::short_location(n.location))] {
                    let line = table.entry(key.clone()).or_insert(MemoryUse { name: key, values: 0, bytes: 0 });
                    line.values += 1;
                    line.bytes += b;
                }
            }
        });
        let sorted = |table: HashMap<String, MemoryUse>| {
            let mut lines: Vec<MemoryUse> = table.into_values().collect();
            lines.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
            lines
        };
        MemoryReport {
            bytes,
            values,
            freed,
            by_op: sorted(by_op),
            by_location: sorted(by_location),
            backward_peak: self.backward_peak.get(),
        }
    }
}

/// Counts the bytes of distinct buffers held at once during a backward pass, and their peak.
pub(crate) struct PeakTracker {
    /// Buffer → (how many holders, bytes).
    live: HashMap<usize, (usize, usize)>,
    current: usize,
    pub peak: usize,
}

impl PeakTracker {
    /// Starts from every value on the tape.
    pub fn of_values<T: Element>(tape: &Tape<T>) -> Self {
        let mut tracker = PeakTracker { live: HashMap::new(), current: 0, peak: 0 };
        tape.with_nodes(|nodes| {
            for v in nodes.iter().filter_map(|n| n.value.as_ref()) {
                tracker.hold((v.buffer_key(), v.bytes()));
            }
        });
        tracker
    }

    /// One more holder of the buffer `(key, bytes)`.
    pub fn hold(&mut self, (key, bytes): (usize, usize)) {
        let entry = self.live.entry(key).or_insert((0, bytes));
        entry.0 += 1;
        if entry.0 == 1 {
            self.current += bytes;
            self.peak = self.peak.max(self.current);
        }
    }

    /// One holder of the buffer `key` fewer.
    pub fn release(&mut self, key: usize) {
        if let Some(entry) = self.live.get_mut(&key) {
            entry.0 -= 1;
            if entry.0 == 0 {
                self.current -= entry.1;
                self.live.remove(&key);
            }
        }
    }
}
