//! Pictures of a tape: a stable text dump (one line a node) and Graphviz DOT.

use crate::tape::{Node, Origin};
use crate::{Element, Tape};
use std::fmt::Write;

/// `%3 = mul(%1, %2) [2, 3]` plus, for leaves, their kind and name.
fn node_head<T: Element>(id: usize, node: &Node<T>) -> String {
    let shape = &node.shape;
    match &node.origin {
        Origin::Leaf { kind, name } => {
            let kind = kind.as_str();
            match name {
                Some(n) => format!("%{id} = {kind} \"{n}\" {shape}"),
                None => format!("%{id} = {kind} {shape}"),
            }
        }
        Origin::Op(op) => {
            let inputs: Vec<String> = node.inputs.iter().map(|i| format!("%{i}")).collect();
            let attrs = op.attributes();
            let attrs = if attrs.is_empty() { String::new() } else { format!("[{attrs}]") };
            format!("%{id} = {}{attrs}({}) {shape}", op.name(), inputs.join(", "))
        }
    }
}

/// A source location as `file:line`. Paths inside the workspace are already relative
/// (`autograd/src/ops/arith.rs`); absolute ones (a dependency's) are cut to the part from its
/// `src/`, `tests/`, `examples/` or `benches/` folder.
pub(crate) fn short_location(loc: &std::panic::Location<'_>) -> String {
    let file = loc.file().replace('\\', "/");
    let file = if file.starts_with('/') {
        ["/src/", "/tests/", "/examples/", "/benches/"]
            .iter()
            .find_map(|marker| file.rfind(marker).map(|i| file[i + 1..].to_string()))
            .unwrap_or(file)
    } else {
        file
    };
    format!("{file}:{}", loc.line())
}

/// An op's name with its attributes, `softmax[axis=-1]`, or a leaf's kind and name,
/// `param "w"`: how reports name a node.
pub(crate) fn node_label<T: Element>(node: &Node<T>) -> String {
    match &node.origin {
        Origin::Op(op) => {
            let attrs = op.attributes();
            if attrs.is_empty() { op.name().to_string() } else { format!("{}[{attrs}]", op.name()) }
        }
        Origin::Leaf { kind, name: Some(n) } => format!("{} \"{n}\"", kind.as_str()),
        Origin::Leaf { kind, name: None } => kind.as_str().to_string(),
    }
}

/// One line of the dump, without the gradient flag: used by reports such as NaN finding.
pub(crate) fn node_line<T: Element>(id: usize, node: &Node<T>) -> String {
    node_head(id, node)
}

impl<T: Element> Tape<T> {
    /// A text listing of the tape, one line a node: id, op (with attributes), inputs, shape,
    /// whether a gradient flows through it (`*`), and the source line that made it.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.named_var("x", Tensor::ones([2]));
    /// let _y = x * x + x;
    /// let dump = tape.dump();
    /// let ops: Vec<&str> = dump.lines().map(|l| l.split("  ").next().unwrap()).collect();
    /// assert_eq!(ops, ["%0 = var \"x\" [2] *", "%1 = mul(%0, %0) [2] *", "%2 = add(%1, %0) [2] *"]);
    /// ```
    pub fn dump(&self) -> String {
        self.with_nodes(|nodes| {
            let lines: Vec<(String, String)> = nodes
                .iter()
                .enumerate()
                .map(|(id, n)| {
                    let grad = if n.requires_grad { " *" } else { "" };
                    (format!("{}{grad}", node_head(id, n)), short_location(n.location))
                })
                .collect();
            let width = lines.iter().map(|(h, _)| h.chars().count()).max().unwrap_or(0);
            let mut out = String::new();
            for (head, loc) in lines {
                let pad = width - head.chars().count();
                writeln!(out, "{head}{}  {loc}", " ".repeat(pad)).expect("writing to a String");
            }
            out
        })
    }

    /// The tape as a Graphviz graph: leaves are ellipses (parameters shaded), ops are boxes,
    /// edges run from inputs to the ops that use them, and each node shows the source line that
    /// recorded it. Render with `dot -Tsvg`, or draw it without Graphviz with [`Tape::to_svg`].
    pub fn to_dot(&self) -> String {
        self.with_nodes(|nodes| {
            let mut out =
                String::from("digraph tape {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=11];\n");
            for (id, n) in nodes.iter().enumerate() {
                let shape = &n.shape;
                let at = short_location(n.location);
                let (label, style) = match &n.origin {
                    Origin::Leaf { kind, name } => {
                        let name = name.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
                        let fill = format!("style=filled, fillcolor=\"{}\"", kind.fill());
                        let kind = kind.as_str();
                        (
                            format!("%{id} {kind}{name}\\n{shape}\\n{at}").replace('"', "\\\""),
                            format!("shape=ellipse, {fill}"),
                        )
                    }
                    Origin::Op(op) => {
                        let attrs = op.attributes();
                        let attrs = if attrs.is_empty() { String::new() } else { format!("\\n{attrs}") };
                        let label = format!("%{id} {}{attrs}\\n{shape}\\n{at}", op.name());
                        let style = if n.requires_grad { "shape=box" } else { "shape=box, color=gray" };
                        (label.replace('"', "\\\""), style.to_string())
                    }
                };
                writeln!(out, "  n{id} [label=\"{label}\", {style}];").expect("writing to a String");
                for i in &n.inputs {
                    writeln!(out, "  n{i} -> n{id};").expect("writing to a String");
                }
            }
            out.push_str("}\n");
            out
        })
    }
}
