//! `botc graph`: a flow's graph as Graphviz dot, a Mermaid flowchart, or an SVG picture.

use crate::EXIT_FINDINGS;
use crate::flows::compile_for_output;
use botc_compiler::dump;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz dot
    Dot,
    /// Mermaid flowchart
    Mermaid,
    /// An SVG picture, laid out by botc itself (nothing to install)
    Svg,
}

pub(crate) fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    let c = match compile_for_output(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(ir) = c.ir() else { return ExitCode::from(EXIT_FINDINGS) };
    out!(
        "{}",
        match format {
            GraphFormat::Dot => dump::dot(ir),
            GraphFormat::Mermaid => dump::mermaid(ir),
            GraphFormat::Svg => match quietly(|| svg(ir)) {
                Some(svg) => svg,
                None => {
                    eprintln!(
                        "error: the layout could not draw {}; `botc graph --format dot` gives the same graph for \
                         Graphviz (please report the flow)",
                        file.display()
                    );
                    return ExitCode::from(crate::EXIT_USAGE);
                }
            },
        }
    );
    if c.has_errors() { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

/// `f()`, or `None` if it panics (the layout library asserts internally), without the panic
/// message: the caller says what failed and what to use instead.
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    std::panic::set_hook(hook);
    out
}

/// Text size in the picture, and the width a character takes at it (an estimate: the SVG is
/// drawn without measuring fonts, so boxes are sized for a typical sans-serif).
const FONT: f64 = 13.0;
const CHAR: f64 = 7.4;

/// XML-escaped text.
fn esc(s: &str) -> String {
    // Control characters (a text may hold an escape character) are not allowed in XML.
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The flows as one SVG picture, side by side. The layered layout (ranks, crossing
/// reduction, coordinates) is rust-sugiyama's (Sugiyama's method as Graphviz's dot does it,
/// on petgraph, pure Rust); the drawing is ours: boxes coloured by node kind with the node's
/// id and what it does, edges curving down to the next rank or, going back up (a loop),
/// round the side, each labelled with its kind (next, when 1, else, on_timeout, ...).
fn svg(program: &botc_compiler::ir::Program) -> String {
    use botc_compiler::ir::NodeKind;
    use std::fmt::Write;
    let config = rust_sugiyama::configure::Config { vertex_spacing: 40.0, ..Default::default() };
    let (mut body, mut left, mut height) = (String::new(), 20.0_f64, 0.0_f64);
    for (fi, flow) in program.flows.iter().enumerate() {
        // Boxes: id and size.
        let ids: Vec<_> = flow.node_ids().collect();
        let labels: Vec<String> = ids.iter().map(|&id| dump::node_label(program, flow, id)).collect();
        let size = |label: &str| {
            let widest = label.lines().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
            (widest * CHAR + 24.0, label.lines().count() as f64 * FONT * 1.3 + 16.0)
        };
        let vertices: Vec<(u32, (f64, f64))> = labels.iter().enumerate().map(|(i, l)| (i as u32, size(l))).collect();
        let index: std::collections::HashMap<_, u32> = ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        let mut edges = Vec::new();
        for &id in &ids {
            for (edge, target) in flow.exits(id) {
                edges.push((index[&id], index[&target], edge.label()));
            }
        }
        // Self-loops take no part in the layout; they are drawn beside their box.
        let layout_edges: Vec<(u32, u32)> = edges.iter().filter(|(a, b, _)| a != b).map(|(a, b, _)| (*a, *b)).collect();
        let mut at = vec![(0.0_f64, 0.0_f64); ids.len()];
        let mut flow_width = 0.0_f64;
        for (component, _, _) in rust_sugiyama::from_vertices_and_edges(&vertices, &layout_edges, &config) {
            let extent = |lo: bool, pick: fn(&(f64, f64)) -> f64, half: fn(&(f64, f64)) -> f64| {
                let ends = component.iter().map(|(i, c)| {
                    let d = half(&vertices[*i].1) / 2.0;
                    if lo { pick(c) - d } else { pick(c) + d }
                });
                if lo { ends.fold(f64::MAX, f64::min) } else { ends.fold(f64::MIN, f64::max) }
            };
            let (x0, x1) = (extent(true, |c| c.0, |s| s.0), extent(false, |c| c.0, |s| s.0));
            let (y0, y1) = (extent(true, |c| c.1, |s| s.1), extent(false, |c| c.1, |s| s.1));
            for (i, (x, y)) in &component {
                at[*i] = (left + flow_width + x - x0, 60.0 + y - y0);
            }
            // Room on the right for the loops that go back up round the side.
            flow_width += x1 - x0 + 100.0;
            height = height.max(y1 - y0 + 100.0);
        }
        let _ = writeln!(
            body,
            r#"<text x="{left}" y="30" class="flow">{}</text>"#,
            esc(&if fi == 0 { flow.name.clone() } else { format!("sub-flow {}", flow.name) })
        );
        for (k, &id) in ids.iter().enumerate() {
            let ((x, y), (w, h)) = (at[k], vertices[k].1);
            let class = match flow.node(id).kind {
                NodeKind::Ask { .. } | NodeKind::Wait { .. } => "wait",
                NodeKind::Branch { .. } => "branch",
                NodeKind::Http { .. } | NodeKind::Call { .. } => "call",
                NodeKind::Handoff { .. } => "handoff",
                NodeKind::End | NodeKind::Return { .. } => "end",
                _ => "step",
            };
            let _ = write!(
                body,
                r#"<g class="node {class}"><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" rx="8"/><text x="{x:.1}" y="{:.1}">"#,
                x - w / 2.0,
                y - h / 2.0,
                y - h / 2.0 + 8.0 + FONT,
            );
            for (n, line) in labels[k].lines().enumerate() {
                let class = if n == 0 { r#" class="id""# } else { "" };
                let _ = write!(
                    body,
                    r#"<tspan x="{x:.1}" dy="{}"{class}>{}</tspan>"#,
                    if n == 0 { 0.0 } else { FONT * 1.3 },
                    esc(line)
                );
            }
            let _ = writeln!(body, "</text></g>");
        }
        for (a, b, label) in &edges {
            let ((x1, y1), (w1, h1)) = (at[*a as usize], vertices[*a as usize].1);
            let ((x2, y2), (w2, h2)) = (at[*b as usize], vertices[*b as usize].1);
            let (path, lx, ly) = if a == b {
                let (sx, sy) = (x1 + w1 / 2.0, y1);
                (
                    format!(
                        "M{sx:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {sx:.1},{:.1}",
                        sy - 6.0,
                        sx + 40.0,
                        sy - 30.0,
                        sx + 40.0,
                        sy + 30.0,
                        sy + 6.0
                    ),
                    sx + 34.0,
                    sy,
                )
            } else if y2 > y1 {
                let (sy, ty) = (y1 + h1 / 2.0, y2 - h2 / 2.0);
                let mid = (sy + ty) / 2.0;
                (format!("M{x1:.1},{sy:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{ty:.1}"), (x1 + x2) / 2.0, mid)
            } else {
                // Back up to an earlier rank: out of the right side, round, into the right side.
                let (sx, tx) = (x1 + w1 / 2.0, x2 + w2 / 2.0);
                let out = sx.max(tx) + 50.0;
                (
                    format!("M{sx:.1},{y1:.1} C{out:.1},{y1:.1} {out:.1},{y2:.1} {tx:.1},{y2:.1}"),
                    out - 12.0,
                    (y1 + y2) / 2.0,
                )
            };
            let _ = writeln!(
                body,
                r#"<path class="edge" d="{path}" marker-end="url(#arrow)"/><text class="label" x="{lx:.1}" y="{ly:.1}">{}</text>"#,
                esc(label)
            );
        }
        left += flow_width.max(200.0) + 80.0;
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{left:.0}" height="{height:.0}" viewBox="0 0 {left:.0} {height:.0}" font-family="system-ui, sans-serif" font-size="{FONT}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4b5563"/></marker></defs>
<style>
.flow {{ font-size: 16px; font-weight: 600; }}
.node rect {{ fill: #ffffff; stroke: #4b5563; stroke-width: 1; }}
.node text {{ text-anchor: middle; fill: #111827; }}
.node .id {{ font-weight: 600; }}
.wait rect {{ fill: #dbeafe; }} .branch rect {{ fill: #fef3c7; }} .call rect {{ fill: #ede9fe; }}
.handoff rect {{ fill: #fee2e2; }} .end rect {{ fill: #e5e7eb; }}
.edge {{ fill: none; stroke: #4b5563; stroke-width: 1.2; }}
.label {{ font-size: 11px; fill: #374151; text-anchor: middle; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }}
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
{body}</svg>
"##
    )
}
