//! Drawing a tape as SVG with no outside tools: a small layered layout of our own.
//!
//! No pure-Rust layout crate fitted: the one that renders DOT (layout-rs) is unmaintained and
//! would make the engine depend on a second graph format. A tape is already a topologically
//! ordered DAG, which is the easy case of layered drawing (Sugiyama's method), done here in its
//! plainest form:
//!
//! 1. **Layers.** An op sits one layer below its lowest input; a leaf sits just above the first
//!    op that uses it, so constants made late (a seed, a mask) are drawn where they are used.
//! 2. **Long edges** get a waypoint in every layer they cross, so they bend around nodes.
//! 3. **Order within a layer**: tape order first, then a few sweeps that sort each layer by the
//!    mean position of its neighbours in the layer above (going down) or below (going up).
//! 4. **Coordinates**: each node is pulled towards its neighbours' mean, then pushed apart to keep
//!    the order and a gap, once from each side; the two placements are averaged.
//!
//! The output depends only on the tape, so a committed picture can be compared with a fresh one.

use crate::Element;
use crate::Tape;
use crate::tape::{Node, Origin};
use std::fmt::Write;

/// Pixels per character of the 11 px label font (a generous average for sans-serif).
const CHAR_WIDTH: f64 = 6.6;
const LINE_HEIGHT: f64 = 14.0;
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 6.0;
/// Horizontal space between neighbours in a layer, and vertical space between layers.
const GAP_X: f64 = 18.0;
const GAP_Y: f64 = 34.0;
const MARGIN: f64 = 12.0;
const SWEEPS: usize = 6;

/// One box of the drawing: a node of the tape or a waypoint of a long edge.
struct Item {
    layer: usize,
    width: f64,
    height: f64,
    /// Items in the layer above this one connects to (inputs or the previous waypoint).
    up: Vec<usize>,
    /// Items in the layer below.
    down: Vec<usize>,
    x: f64,
    y: f64,
}

/// What a real node looks like.
struct Shape {
    lines: Vec<String>,
    leaf: bool,
    fill: &'static str,
    stroke: &'static str,
}

fn describe<T: Element>(id: usize, n: &Node<T>) -> Shape {
    let location = crate::graph::short_location(n.location);
    match &n.origin {
        Origin::Leaf { kind, name } => {
            let (fill, kind) = (kind.fill(), kind.as_str());
            let name = name.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
            Shape {
                lines: vec![format!("%{id} {kind}{name}"), n.shape.to_string(), location],
                leaf: true,
                fill,
                stroke: "#333333",
            }
        }
        Origin::Op(op) => {
            let mut lines = vec![format!("%{id} {}", op.name())];
            let attrs = op.attributes();
            if !attrs.is_empty() {
                lines.push(attrs);
            }
            lines.push(n.shape.to_string());
            lines.push(location);
            let stroke = if n.requires_grad { "#333333" } else { "#aaaaaa" };
            Shape { lines, leaf: false, fill: "#ffffff", stroke }
        }
    }
}

/// The layer of every node: each op one below its lowest input, then every node that is used
/// moved down to just above its first use (so a seed or a mask made late sits where it is used).
fn layers<T: Element>(nodes: &[Node<T>]) -> Vec<usize> {
    let mut layer = vec![0usize; nodes.len()];
    for (id, n) in nodes.iter().enumerate() {
        layer[id] = n.inputs.iter().map(|&i| layer[i] + 1).max().unwrap_or(0);
    }
    let mut first_use = vec![usize::MAX; nodes.len()];
    // Users come later on the tape, so a reverse scan settles each node's users first.
    for id in (0..nodes.len()).rev() {
        if first_use[id] != usize::MAX {
            layer[id] = first_use[id] - 1;
        }
        for &i in &nodes[id].inputs {
            first_use[i] = first_use[i].min(layer[id]);
        }
    }
    layer
}

/// Sorts each layer by the mean position of its neighbours, sweeping down then up.
fn order(items: &[Item], rows: &mut [Vec<usize>]) {
    let mut position = vec![0.0; items.len()];
    let place = |rows: &[Vec<usize>], position: &mut Vec<f64>| {
        for row in rows {
            for (p, &i) in row.iter().enumerate() {
                position[i] = p as f64;
            }
        }
    };
    place(rows, &mut position);
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let layers: Vec<usize> =
            if down { (1..rows.len()).collect() } else { (0..rows.len().saturating_sub(1)).rev().collect() };
        for l in layers {
            let key = |i: usize| {
                let neighbours = if down { &items[i].up } else { &items[i].down };
                if neighbours.is_empty() {
                    position[i]
                } else {
                    neighbours.iter().map(|&j| position[j]).sum::<f64>() / neighbours.len() as f64
                }
            };
            let mut keyed: Vec<(f64, f64, usize)> = rows[l].iter().map(|&i| (key(i), position[i], i)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, _, i)| i).collect();
            for (p, &i) in rows[l].iter().enumerate() {
                position[i] = p as f64;
            }
        }
    }
}

/// Horizontal positions: packed rows, then pulled towards neighbours while keeping the order.
fn place_x(items: &mut [Item], rows: &[Vec<usize>]) {
    for row in rows {
        let total: f64 = row.iter().map(|&i| items[i].width).sum::<f64>() + GAP_X * row.len().saturating_sub(1) as f64;
        let mut x = -total / 2.0;
        for &i in row {
            items[i].x = x + items[i].width / 2.0;
            x += items[i].width + GAP_X;
        }
    }
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let layers: Vec<usize> =
            if down { (1..rows.len()).collect() } else { (0..rows.len().saturating_sub(1)).rev().collect() };
        for l in layers {
            let row = &rows[l];
            let want: Vec<f64> = row
                .iter()
                .map(|&i| {
                    let neighbours = if down { &items[i].up } else { &items[i].down };
                    if neighbours.is_empty() {
                        items[i].x
                    } else {
                        neighbours.iter().map(|&j| items[j].x).sum::<f64>() / neighbours.len() as f64
                    }
                })
                .collect();
            let widths: Vec<f64> = row.iter().map(|&i| items[i].width).collect();
            let sep = |a: usize, b: usize| (widths[a] + widths[b]) / 2.0 + GAP_X;
            // From the left: as wanted, but never closer than the gap to the left neighbour.
            let mut left = want.clone();
            for p in 1..row.len() {
                left[p] = left[p].max(left[p - 1] + sep(p - 1, p));
            }
            // From the right, likewise; then the mean of the two.
            let mut right = want;
            for p in (0..row.len().saturating_sub(1)).rev() {
                right[p] = right[p].min(right[p + 1] - sep(p, p + 1));
            }
            for (p, &i) in row.iter().enumerate() {
                items[i].x = (left[p] + right[p]) / 2.0;
            }
            // The mean of two orderly placements keeps the order but may break the gap: push.
            for p in 1..row.len() {
                let min = items[row[p - 1]].x + sep(p - 1, p);
                if items[row[p]].x < min {
                    items[row[p]].x = min;
                }
            }
        }
    }
}

/// Appends a curve from `a` down to `b` that leaves and arrives vertically, its control points
/// moved sideways by `offset` (to fan out repeated edges).
fn curve(d: &mut String, a: (f64, f64), b: (f64, f64), offset: f64) {
    let bend = (b.1 - a.1) / 2.0;
    write!(d, " C {:.1} {:.1} {:.1} {:.1} {:.1} {:.1}", a.0 + offset, a.1 + bend, b.0 + offset, b.1 - bend, b.0, b.1)
        .expect("writing to a String");
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl<T: Element> Tape<T> {
    /// The tape as an SVG picture, drawn without Graphviz: leaves are ellipses (parameters blue,
    /// vars green, constants grey), ops are boxes (grey when no gradient flows through them),
    /// edges run from inputs down to the ops that use them, and every node shows its id, op,
    /// attributes, shape and the source line that recorded it.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.named_var("x", Tensor::ones([2]));
    /// let _y = (x * x + x).sum_all();
    /// let svg = tape.to_svg();
    /// assert!(svg.starts_with("<svg") && svg.contains("%1 mul") && svg.contains("%2 add"));
    /// ```
    pub fn to_svg(&self) -> String {
        self.with_nodes(|nodes| {
            let shapes: Vec<Shape> = nodes.iter().enumerate().map(|(id, n)| describe(id, n)).collect();
            let layer = layers(nodes);
            let mut items: Vec<Item> = shapes
                .iter()
                .zip(&layer)
                .map(|(s, &layer)| {
                    let chars = s.lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
                    let (mut width, mut height) =
                        (chars * CHAR_WIDTH + 2.0 * PAD_X, s.lines.len() as f64 * LINE_HEIGHT + 2.0 * PAD_Y);
                    if s.leaf {
                        // An ellipse needs room around the text's corners.
                        (width, height) = (width * 1.2, height * 1.15);
                    }
                    Item { layer, width, height, up: vec![], down: vec![], x: 0.0, y: 0.0 }
                })
                .collect();
            // Edges, with a waypoint in each layer a long one crosses: (from, waypoints, to).
            let mut edges: Vec<(usize, Vec<usize>, usize)> = Vec::new();
            for (to, n) in nodes.iter().enumerate() {
                for &from in &n.inputs {
                    let mut path = vec![from];
                    for l in layer[from] + 1..layer[to] {
                        items.push(Item {
                            layer: l,
                            width: 2.0,
                            height: 0.0,
                            up: vec![],
                            down: vec![],
                            x: 0.0,
                            y: 0.0,
                        });
                        path.push(items.len() - 1);
                    }
                    path.push(to);
                    for w in path.windows(2) {
                        items[w[0]].down.push(w[1]);
                        items[w[1]].up.push(w[0]);
                    }
                    edges.push((from, path[1..path.len() - 1].to_vec(), to));
                }
            }
            let depth = items.iter().map(|i| i.layer + 1).max().unwrap_or(0);
            let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
            for (i, item) in items.iter().enumerate() {
                rows[item.layer].push(i);
            }
            order(&items, &mut rows);
            place_x(&mut items, &rows);
            let mut y = MARGIN;
            for row in &rows {
                let h = row.iter().map(|&i| items[i].height).fold(0.0, f64::max);
                for &i in row {
                    items[i].y = y + h / 2.0;
                    if i >= shapes.len() {
                        // A waypoint spans its layer: the edge runs straight past the nodes.
                        items[i].height = h;
                    }
                }
                y += h + GAP_Y;
            }
            let min_x = items.iter().map(|i| i.x - i.width / 2.0).fold(f64::INFINITY, f64::min);
            let max_x = items.iter().map(|i| i.x + i.width / 2.0).fold(f64::NEG_INFINITY, f64::max);
            let shift = MARGIN - if min_x.is_finite() { min_x } else { 0.0 };
            for item in &mut items {
                item.x += shift;
            }
            let width = if max_x.is_finite() { max_x - min_x + 2.0 * MARGIN } else { 2.0 * MARGIN };
            let height = (y - GAP_Y + MARGIN).max(2.0 * MARGIN);
            render(&items, &shapes, &edges, width, height)
        })
    }
}

fn render(items: &[Item], shapes: &[Shape], edges: &[(usize, Vec<usize>, usize)], width: f64, height: f64) -> String {
    let mut out = String::new();
    let w = |out: &mut String, s: String| out.push_str(&s);
    w(
        &mut out,
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.1} {height:.1}\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        ),
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555555\"/></marker></defs>\n",
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    // Edges first, so nodes are drawn over their ends. Repeated edges (x·x) fan out a little.
    let mut seen: Vec<(usize, usize)> = Vec::new();
    for (from, waypoints, to) in edges {
        let repeat = seen.iter().filter(|&&e| e == (*from, *to)).count() as f64;
        seen.push((*from, *to));
        let offset = if repeat == 0.0 { 0.0 } else { 10.0 * repeat };
        // Curves between layers; straight down through each layer a waypoint crosses.
        let mut at = (items[*from].x, items[*from].y + items[*from].height / 2.0);
        let mut d = format!("M {:.1} {:.1}", at.0, at.1);
        for &i in waypoints {
            let (x, half) = (items[i].x + offset, items[i].height / 2.0);
            curve(&mut d, at, (x, items[i].y - half), offset);
            write!(d, " L {x:.1} {:.1}", items[i].y + half).expect("writing to a String");
            at = (x, items[i].y + half);
        }
        curve(&mut d, at, (items[*to].x, items[*to].y - items[*to].height / 2.0), offset);
        writeln!(
            out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>"
        )
        .expect("writing to a String");
    }
    for (item, shape) in items.iter().zip(shapes) {
        let (x, y) = (item.x, item.y);
        if shape.leaf {
            writeln!(
                out,
                "<ellipse cx=\"{x:.1}\" cy=\"{y:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"{}\" stroke=\"{}\"/>",
                item.width / 2.0,
                item.height / 2.0,
                shape.fill,
                shape.stroke
            )
        } else {
            writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"4\" fill=\"{}\" stroke=\"{}\"/>",
                x - item.width / 2.0,
                y - item.height / 2.0,
                item.width,
                item.height,
                shape.fill,
                shape.stroke
            )
        }
        .expect("writing to a String");
        let top = y - shape.lines.len() as f64 * LINE_HEIGHT / 2.0 + LINE_HEIGHT * 0.75;
        for (k, line) in shape.lines.iter().enumerate() {
            // The last line is the source location: smaller and grey.
            let style =
                if k + 1 == shape.lines.len() { "font-size=\"9\" fill=\"#777777\"" } else { "font-size=\"11\"" };
            writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" {style}>{}</text>",
                top + k as f64 * LINE_HEIGHT,
                escape(line)
            )
            .expect("writing to a String");
        }
    }
    out.push_str("</svg>\n");
    out
}
