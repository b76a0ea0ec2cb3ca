//! Resolve and lower: AST files to the IR. Node and variable names become typed ids, targets
//! become graph edges, expressions are typed (see [`crate::types`]).
//!
//! Everything that can be found while resolving names is reported here: unknown targets,
//! duplicate ids, missing or unknown start, unknown sub-flows and arguments, dead ends.

use crate::ast::{self, BUILTIN_NAMESPACES, ButtonAction, Expect, NodeKind as K, Type};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::ir::*;
use crate::span::{FileId, Span};
use crate::types::{Scope, Typer, assignable, invalid_regex};
use rustc_hash::FxHashMap as HashMap;

/// A parsed file ready to lower. The first file is the one being compiled; the others are
/// its imports, whose flows become callable.
pub struct Parsed {
    pub file: FileId,
    pub ast: ast::File,
}

struct Signature {
    name: String,
    span: Span,
    params: Vec<(String, Type)>,
    returns: Option<Type>,
}

pub fn lower(files: &[Parsed], diags: &mut Vec<Diagnostic>) -> Program {
    // Every flow of every file, main flows first so FlowId(0) is the root file's main flow.
    let mut flows: Vec<(FileId, &ast::Flow, bool)> = Vec::new();
    for p in files {
        flows.push((p.file, &p.ast.flow, false));
    }
    for p in files {
        flows.extend(p.ast.subflows.iter().map(|f| (p.file, f, true)));
    }
    let sigs: Vec<Signature> = flows
        .iter()
        .map(|(_, f, _)| Signature {
            name: f.name.name.to_string(),
            span: f.name.span,
            params: f.params.iter().map(|p| (p.name.name.to_string(), p.ty.ty)).collect(),
            returns: f.returns.as_ref().map(|r| r.ty),
        })
        .collect();
    let mut by_name: HashMap<&str, FlowId> = HashMap::default();
    for (i, s) in sigs.iter().enumerate() {
        if let Some(first) = by_name.get(s.name.as_str()) {
            // An imported file checked on its own is listed once; only a real clash counts.
            if i > 0 && sigs[first.0 as usize].span != s.span {
                diags.push(
                    Diagnostic::error("E0505", s.span, format!("two flows are named `{}`", s.name))
                        .label("second definition")
                        .with_label(sigs[first.0 as usize].span, "first definition")
                        .help("rename one of them; flow names must be unique across a file and its imports"),
                );
            }
            continue;
        }
        by_name.insert(&s.name, FlowId(i as u32));
    }
    let root = &files[0].ast;
    let channels = root.channels.iter().filter_map(|c| Channel::from_name(&c.name).map(|ch| (ch, c.span))).collect();
    let mut program = Program { flows: Vec::new(), channels };
    for (file, flow, is_sub) in &flows {
        let before = diags.len();
        let lowered = FlowLowerer {
            sigs: &sigs,
            by_name: &by_name,
            diags,
            is_sub: *is_sub,
            mains: files.len(),
            returns: flow.returns.as_ref().map(|r| r.ty),
        }
        .flow(*file, flow);
        program.flows.push(lowered);
        if *is_sub {
            // The flows of its file that call it: the author expected it to see theirs.
            let calls = |o: &ast::Flow| {
                o.nodes
                    .iter()
                    .any(|n| matches!(&n.kind, ast::NodeKind::Call { flow: f, .. } if f.name == flow.name.name))
            };
            let callers = flows.iter().filter(|(f, o, _)| f == file && o.name.name != flow.name.name && calls(o));
            theirs_not_ours(&mut diags[before..], callers.map(|(_, o, _)| *o));
        }
    }
    program
}

/// A sub-flow that reads or sets a variable of a flow that calls it: the author expected it
/// to be visible, and the help says how to pass it (unless it already suggests a near name
/// of the sub-flow's own, the likelier mistake).
fn theirs_not_ours<'a>(diags: &mut [Diagnostic], others: impl Iterator<Item = &'a ast::Flow> + Clone) {
    let generic = |d: &Diagnostic| d.help.as_deref().is_none_or(|h| h.starts_with("declare it under"));
    for d in diags.iter_mut().filter(|d| d.code.0 == "E0301" && generic(d)) {
        let Some(name) = d.message.strip_prefix("undeclared variable `").and_then(|m| m.strip_suffix('`')) else {
            continue;
        };
        let owner = others.clone().find(|f| f.vars.iter().chain(&f.params).any(|v| v.name.name == name));
        if let Some(owner) = owner {
            d.help = Some(format!(
                "{}, and a sub-flow does not see the variables of the flow that calls it: make `{name}` a parameter of this sub-flow and pass it with `with`, or give a result back with `return`",
                belongs(name, &owner.name.name)
            ));
        }
    }
}

fn belongs(var: &str, flow: &str) -> String {
    format!("`{var}` is a variable of flow `{flow}`")
}

/// Whether `d` is the error of a sub-flow reading `var` of `flow` (see `theirs_not_ours`):
/// the checker then does not also call `var` unused.
pub fn read_from_a_subflow(d: &Diagnostic, flow: &str, var: &str) -> bool {
    d.code.0 == "E0301" && d.help.as_deref().is_some_and(|h| h.starts_with(&belongs(var, flow)))
}

/// Receives each exit of a node as it is lowered: the edge kind and its written target.
type EdgeSink<'a> = dyn FnMut(Edge, &Option<ast::Ident>, &mut Vec<Diagnostic>) + 'a;

struct FlowLowerer<'a> {
    sigs: &'a [Signature],
    by_name: &'a HashMap<&'a str, FlowId>,
    diags: &'a mut Vec<Diagnostic>,
    is_sub: bool,
    /// How many files' main flows come first in `sigs`: those are not sub-flows to call.
    mains: usize,
    /// The declared result type of the flow being lowered, for `return`.
    returns: Option<Type>,
}

impl FlowLowerer<'_> {
    fn flow(&mut self, file: FileId, f: &ast::Flow) -> Flow {
        let mut vars: Vec<Var> = Vec::new();
        for decl in f.params.iter().chain(&f.vars) {
            if let Some(first) = vars.iter().find(|v| v.name == decl.name.name) {
                self.diags.push(
                    Diagnostic::error(
                        "E0206",
                        decl.name.span,
                        format!("variable `{}` is declared twice", decl.name.name),
                    )
                    .label("second declaration")
                    .with_label(first.span, "first declaration")
                    .help("remove or rename one of them"),
                );
                continue;
            }
            if BUILTIN_NAMESPACES.contains(&decl.name.name.as_str()) {
                self.diags.push(
                    Diagnostic::error("E0306", decl.name.span, format!("`{}` is a built-in name", decl.name.name))
                        .label("reserved")
                        .help("choose another name; `user`, `event` and `bot` hold built-in values"),
                );
                // Still declared (the flow does not compile anyway), so the reads and writes
                // of it are not also reported.
            }
            vars.push(Var { name: decl.name.name.to_string(), ty: decl.ty.ty, default: None, span: decl.name.span });
        }
        // Defaults are typed once every variable is known (a default is a literal, so the
        // scope only matters for error messages).
        for decl in f.params.iter().chain(&f.vars) {
            if let Some(d) = &decl.default {
                let mut typer = Typer { scope: Scope { vars: &vars }, diags: self.diags };
                let typed = typer.expect(d, decl.ty.ty);
                if let Some(v) = vars.iter_mut().find(|v| v.span == decl.name.span) {
                    v.default = Some(typed);
                }
            }
        }
        let mut out = Flow {
            name: f.name.name.to_string(),
            file,
            span: f.span,
            name_span: f.name.span,
            params: f.params.len().min(vars.len()),
            returns: f.returns.as_ref().map(|r| r.ty),
            vars,
            // Sized once; most nodes have one or two edges.
            graph: petgraph::Graph::with_capacity(f.nodes.len(), f.nodes.len() * 2),
            start: None,
        };
        // Nodes first, so every target can be resolved in one pass afterwards.
        let mut ids: HashMap<&str, NodeId> = HashMap::default();
        let mut kept: Vec<&ast::Node> = Vec::new();
        for node in &f.nodes {
            if let Some(&first) = ids.get(node.id.name.as_str()) {
                self.diags.push(
                    Diagnostic::error("E0202", node.id.span, format!("duplicate node id `{}`", node.id.name))
                        .label("second node with this id")
                        .with_label(out.node(first).name_span, "first defined here")
                        .help("node ids must be unique within a flow; rename one of them"),
                );
                continue;
            }
            let idx = out.graph.add_node(Node {
                name: node.id.name.clone(),
                name_span: node.id.span,
                span: node.span,
                kind: NodeKind::End,
                targets: Vec::new(),
            });
            ids.insert(&node.id.name, NodeId::from_index(idx));
            kept.push(node);
        }
        let names: Vec<&str> = kept.iter().map(|n| n.id.name.as_str()).collect();
        let resolve = |t: &ast::Ident, diags: &mut Vec<Diagnostic>| -> Option<NodeId> {
            match ids.get(t.name.as_str()) {
                Some(&id) => Some(id),
                // Not a valid id at all: the front end already said so.
                None if !crate::front::tree::is_ident(&t.name) => None,
                None => {
                    let help = did_you_mean(&t.name, names.iter().copied())
                        .unwrap_or_else(|| "targets name a node of the same flow".into());
                    diags.push(
                        Diagnostic::error("E0201", t.span, format!("unknown target node `{}`", t.name))
                            .label("no node has this id")
                            .help(help),
                    );
                    None
                }
            }
        };
        out.start = match &f.start {
            Some(s) => match ids.get(s.name.as_str()) {
                Some(&id) => Some(id),
                None => {
                    let help = did_you_mean(&s.name, names.iter().copied())
                        .unwrap_or_else(|| format!("`start` must name one of the nodes: {}", names.join(", ")));
                    self.diags.push(
                        Diagnostic::error("E0204", s.span, format!("unknown start node `{}`", s.name))
                            .label("no node has this id")
                            .help(help),
                    );
                    None
                }
            },
            None => {
                let help = match names.first() {
                    Some(first) => format!("add `start: {first}` to say where conversations begin"),
                    None => "add nodes and a `start:` naming the first one".into(),
                };
                self.diags.push(
                    Diagnostic::error("E0203", f.span, format!("flow `{}` has no `start`", f.name.name))
                        .label("missing `start`")
                        .help(help),
                );
                None
            }
        };
        for node in kept {
            let id = ids[node.id.name.as_str()];
            let mut edges: Vec<(Edge, NodeId, Span)> = Vec::new();
            let mut edge = |e: Edge, t: &Option<ast::Ident>, diags: &mut Vec<Diagnostic>| {
                if let Some(t) = t
                    && let Some(target) = resolve(t, diags)
                {
                    edges.push((e, target, t.span));
                }
            };
            let kind = self.node(&out.vars, node, &mut |e, t, d| edge(e, t, d));
            out.graph[id.index()].kind = kind;
            for (e, target, span) in edges {
                out.graph.add_edge(id.index(), target.index(), e);
                out.graph[id.index()].targets.push((e, span));
            }
        }
        out
    }

    fn dead_end(&mut self, node: &ast::Node, what: &str, help: String) {
        self.diags.push(
            Diagnostic::error("E0205", node.span, format!("node `{}` is a dead end", node.id.name))
                .label(what.to_string())
                .help(help),
        );
    }

    fn var_target(&mut self, vars: &[Var], name: &Option<ast::Ident>, want: Option<Type>) -> Option<VarId> {
        let name = name.as_ref()?;
        match vars.iter().position(|v| v.name == name.name) {
            Some(i) => {
                let var = &vars[i];
                if let Some(want) = want
                    && !assignable(var.ty, want)
                {
                    self.diags.push(
                        Diagnostic::error(
                            "E0304",
                            name.span,
                            format!("`{}` is {}, but this stores {}", var.name, var.ty.name(), want.name()),
                        )
                        .label("type mismatch")
                        .with_label(var.span, format!("declared as {} here", var.ty.name())),
                    );
                }
                Some(VarId(i as u32))
            }
            None => {
                let namespace = name.name.split('.').next().unwrap_or_default();
                let (code, msg, help) = if BUILTIN_NAMESPACES.contains(&namespace) {
                    (
                        "E0306",
                        format!("`{}` is read-only", name.name),
                        "built-ins cannot be assigned; declare a variable".to_string(),
                    )
                } else {
                    (
                        "E0301",
                        format!("undeclared variable `{}`", name.name),
                        did_you_mean(&name.name, vars.iter().map(|v| v.name.as_str()))
                            .unwrap_or_else(|| format!("declare it under `vars:`, for example `{}: text`", name.name)),
                    )
                };
                self.diags.push(Diagnostic::error(code, name.span, msg).label("not a variable").help(help));
                None
            }
        }
    }

    fn buttons(&mut self, typer: &mut Typer<'_, '_>, buttons: &[ast::Button]) -> Vec<Button> {
        buttons
            .iter()
            .map(|b| Button {
                label: typer.template(&b.label),
                value: match &b.action {
                    ButtonAction::Value(v) => Some(v.value.clone()),
                    ButtonAction::Url(_) => None,
                },
                url: match &b.action {
                    ButtonAction::Url(u) => Some(typer.template(u)),
                    ButtonAction::Value(_) => None,
                },
            })
            .collect()
    }

    fn node(&mut self, vars: &[Var], node: &ast::Node, edge: &mut EdgeSink<'_>) -> NodeKind {
        let needs_next = |next: &Option<ast::Ident>, this: &mut Self, what: &str| {
            if next.is_none() {
                this.dead_end(node, &format!("{what} has no `next`"), "add `next: <node id>`, or make it `end`".into());
            }
        };
        match &node.kind {
            K::Say { text, buttons, image, next } => {
                needs_next(next, self, "this message");
                edge(Edge::Next, next, self.diags);
                let mut diags = Vec::new();
                let mut typer = Typer { scope: Scope { vars }, diags: &mut diags };
                let kind = NodeKind::Say {
                    text: typer.template(text),
                    buttons: self.buttons(&mut typer, buttons),
                    image: image.as_ref().map(|i| typer.template(i)),
                };
                self.diags.extend(diags);
                kind
            }
            K::Ask {
                prompt, into, expect, buttons, retries, reprompt, on_invalid, timeout, on_timeout, next, ..
            } => {
                needs_next(next, self, "this question");
                edge(Edge::Next, next, self.diags);
                edge(Edge::Invalid, on_invalid, self.diags);
                edge(Edge::Timeout, on_timeout, self.diags);
                match (timeout, on_timeout) {
                    (Some(t), None) => self.diags.push(
                        Diagnostic::error("E0208", t.span, "`timeout` without `on_timeout`")
                            .label("where should the conversation go when this runs out?")
                            .help("add `on_timeout: <node id>`"),
                    ),
                    (None, Some(t)) => self.diags.push(
                        Diagnostic::error("E0208", t.span, "`on_timeout` without `timeout`")
                            .label("this can never happen")
                            .help("add `timeout: 10m` (or another duration)"),
                    ),
                    _ => {}
                }
                self.expect_checks(expect);
                self.button_answers(expect, buttons);
                let into_id = self.var_target(vars, into, Some(expect.value_type()));
                let mut diags = Vec::new();
                let mut typer = Typer { scope: Scope { vars }, diags: &mut diags };
                let kind = NodeKind::Ask {
                    prompt: typer.template(prompt),
                    into: into_id,
                    expect: expect.clone(),
                    buttons: self.buttons(&mut typer, buttons),
                    retries: retries.map_or(2, |r| r.0),
                    reprompt: reprompt.as_ref().map(|r| typer.template(r)),
                    timeout: timeout.map(|t| t.seconds),
                };
                self.diags.extend(diags);
                kind
            }
            K::Branch { arms, otherwise } => {
                for (i, arm) in arms.iter().enumerate() {
                    edge(Edge::Case(i as u32), &arm.goto, self.diags);
                }
                if otherwise.is_none() {
                    self.dead_end(
                        node,
                        "this branch has no `else`",
                        "add `else: <node id>` for when no condition holds".into(),
                    );
                }
                edge(Edge::Else, otherwise, self.diags);
                let mut typer = Typer { scope: Scope { vars }, diags: self.diags };
                NodeKind::Branch { conds: arms.iter().map(|a| typer.expect(&a.when, Type::Boolean)).collect() }
            }
            K::Set { assigns, next } => {
                needs_next(next, self, "this assignment");
                edge(Edge::Next, next, self.diags);
                let mut out = Vec::new();
                for a in assigns {
                    let value = Typer { scope: Scope { vars }, diags: self.diags }.expr(&a.value);
                    if let Some(v) = self.var_target(vars, &Some(a.var.clone()), Some(value.ty)) {
                        out.push((v, value));
                    }
                }
                NodeKind::Set { assigns: out }
            }
            K::Call { flow, args, into, next } => {
                needs_next(next, self, "this call");
                edge(Edge::Next, next, self.diags);
                let named = self.by_name.get(flow.name.as_str()).copied();
                // A file's main flow is where its conversations start, not a sub-flow: calling
                // one would end the conversation where it returns.
                let callee = named.filter(|id| id.0 as usize >= self.mains);
                let mut typed_args = Vec::new();
                let mut into_ty = None;
                match callee {
                    None => {
                        let subflows = self.sigs[self.mains..].iter().map(|s| s.name.as_str());
                        let d = if named.is_some() {
                            let names: Vec<String> = subflows.map(|n| format!("`{n}`")).collect();
                            Diagnostic::error(
                                "E0501",
                                flow.span,
                                format!("`{}` is a main flow, not a sub-flow", flow.name),
                            )
                            .label("a file's main flow cannot be called")
                            .help(if names.is_empty() {
                                "move the steps to call into a sub-flow (under `subflows:`) and call that".to_string()
                            } else {
                                format!("call one of the sub-flows: {}", names.join(", "))
                            })
                        } else {
                            let help = did_you_mean(&flow.name, subflows)
                                .unwrap_or_else(|| "define it under `subflows:` or import the file that has it".into());
                            Diagnostic::error("E0501", flow.span, format!("unknown sub-flow `{}`", flow.name))
                                .label("no flow has this name")
                                .help(help)
                        };
                        self.diags.push(d);
                        // The arguments are still read (and checked): the variables they
                        // name are used, whatever the call's name should be.
                        let mut typer = Typer { scope: Scope { vars }, diags: self.diags };
                        typed_args = args.iter().map(|a| typer.expr(&a.value)).collect();
                    }
                    Some(id) => {
                        let sig = &self.sigs[id.0 as usize];
                        into_ty = sig.returns;
                        for a in args {
                            if !sig.params.iter().any(|(p, _)| *p == a.var.name) {
                                let help = did_you_mean(&a.var.name, sig.params.iter().map(|(p, _)| p.as_str()))
                                    .unwrap_or_else(|| format!("`{}` takes: {}", sig.name, param_list(sig)));
                                self.diags.push(
                                    Diagnostic::error(
                                        "E0502",
                                        a.var.span,
                                        format!("`{}` has no parameter `{}`", sig.name, a.var.name),
                                    )
                                    .label("unknown argument")
                                    .with_label(sig.span, "sub-flow defined here")
                                    .help(help),
                                );
                            }
                        }
                        for (p, ty) in &sig.params {
                            match args.iter().find(|a| a.var.name == *p) {
                                Some(a) => {
                                    let mut typer = Typer { scope: Scope { vars }, diags: self.diags };
                                    typed_args.push(typer.expect(&a.value, *ty));
                                }
                                None => self.diags.push(
                                    Diagnostic::error(
                                        "E0502",
                                        flow.span,
                                        format!("call to `{}` is missing argument `{p}`", sig.name),
                                    )
                                    .label(format!(
                                        "`{}` takes {} argument{}",
                                        sig.name,
                                        sig.params.len(),
                                        if sig.params.len() == 1 { "" } else { "s" }
                                    ))
                                    .with_label(sig.span, "sub-flow defined here")
                                    .help(format!("pass it under `with:`, e.g. `with: {{ {p}: ... }}`")),
                                ),
                            }
                        }
                        if let (Some(i), None) = (into, sig.returns) {
                            self.diags.push(
                                Diagnostic::error("E0502", i.span, format!("`{}` returns nothing", sig.name))
                                    .label("nothing to store")
                                    .with_label(sig.span, "add `returns: <type>` to this sub-flow")
                                    .help("remove `into`, or make the sub-flow return a value"),
                            );
                        }
                    }
                }
                let into = self.var_target(vars, into, into_ty);
                NodeKind::Call { flow: callee, args: typed_args, into }
            }
            K::Return { value } => {
                if !self.is_sub {
                    self.diags.push(
                        Diagnostic::error("E0504", node.span, "`return` outside a sub-flow")
                            .label("the main flow has nowhere to return to")
                            .help("use `end` to finish the conversation"),
                    );
                }
                let value = value.as_ref().map(|v| Typer { scope: Scope { vars }, diags: self.diags }.expr(v));
                match (&value, self.returns) {
                    (Some(v), None) if self.is_sub => self.diags.push(
                        Diagnostic::error("E0304", v.span, "this sub-flow returns nothing")
                            .label("unexpected value")
                            .help(format!("declare `returns: {}` on the sub-flow, or remove the value", v.ty.name())),
                    ),
                    (Some(v), Some(want)) if !assignable(want, v.ty) => self.diags.push(
                        Diagnostic::error(
                            "E0304",
                            v.span,
                            format!("type mismatch: the sub-flow returns {}, found {}", want.name(), v.ty.name()),
                        )
                        .label("wrong type"),
                    ),
                    (None, Some(want)) => self.diags.push(
                        Diagnostic::error("E0304", node.span, format!("this sub-flow must return {}", want.name()))
                            .label("no value")
                            .help("write `return: <expression>`"),
                    ),
                    _ => {}
                }
                NodeKind::Return { value }
            }
            K::Http { url, method, headers, body, into, on_error, next } => {
                needs_next(next, self, "this request");
                edge(Edge::Next, next, self.diags);
                edge(Edge::Error, on_error, self.diags);
                let target = self.var_target(vars, into, Some(Type::Json));
                // A json value may be stored anywhere (it is checked when used), but an http
                // result is an object ({status, body}): in any other type it fails at run time.
                if let (Some(v), Some(name)) = (target, into) {
                    let var = &vars[v.0 as usize];
                    if var.ty != Type::Json {
                        self.diags.push(
                            Diagnostic::error(
                                "E0304",
                                name.span,
                                format!("`{}` is {}, but an http result is json", var.name, var.ty.name()),
                            )
                            .label("type mismatch")
                            .with_label(var.span, format!("declared as {} here", var.ty.name()))
                            .help(format!(
                                "declare `{}: json` and read its fields: `{}.status`, `{}.body`",
                                var.name, var.name, var.name
                            )),
                        );
                    }
                }
                let into = target;
                let mut typer = Typer { scope: Scope { vars }, diags: self.diags };
                NodeKind::Http {
                    method: *method,
                    url: typer.template(url),
                    headers: headers.iter().map(|h| (h.name.value.to_string(), typer.template(&h.value))).collect(),
                    body: body.as_ref().map(|b| typer.template(b)),
                    into,
                }
            }
            K::Handoff { queue, reason, next } => {
                edge(Edge::Next, next, self.diags);
                if queue.value.trim().is_empty() {
                    self.diags.push(
                        Diagnostic::error("E0102", queue.span, "handoff needs a queue name")
                            .label("empty queue")
                            .help("name the human agents' queue, e.g. `handoff: support`"),
                    );
                }
                let reason = reason.as_ref().map(|r| Typer { scope: Scope { vars }, diags: self.diags }.template(r));
                NodeKind::Handoff { queue: queue.value.to_string(), reason, resumes: next.is_some() }
            }
            K::Wait { duration, next } => {
                needs_next(next, self, "this wait");
                edge(Edge::Next, next, self.diags);
                NodeKind::Wait { seconds: duration.seconds }
            }
            K::Goto { target } => {
                edge(Edge::Goto, &Some(target.clone()), self.diags);
                NodeKind::Goto
            }
            K::End => NodeKind::End,
        }
    }

    fn expect_checks(&mut self, expect: &Expect) {
        match expect {
            Expect::Choice(choices, span) => {
                if choices.is_empty() {
                    self.diags.push(
                        Diagnostic::error("E0601", *span, "a choice needs at least one option")
                            .label("empty list")
                            .help("list the answers the user can pick, e.g. `choice: [small, large]`"),
                    );
                }
                let folded: Vec<compact_str::CompactString> = choices.iter().map(|c| c.value.to_lowercase()).collect();
                for (i, c) in choices.iter().enumerate() {
                    if let Some(first) = (0..i).find(|&j| folded[j] == folded[i]).map(|j| &choices[j]) {
                        self.diags.push(
                            Diagnostic::error("E0602", c.span, format!("duplicate choice `{}`", c.value))
                                .label("listed again")
                                .with_label(first.span, "first listed here")
                                .help("answers are matched without regard to case; remove the duplicate"),
                        );
                    }
                }
            }
            Expect::Regex(r) => {
                if let Err(e) = regex::Regex::new(&r.value) {
                    self.diags.push(invalid_regex(r.span, &e));
                }
            }
            _ => {}
        }
    }

    /// E0605: a button of an `ask` whose value the ask never accepts (pressing it can only
    /// re-prompt), judged by the VM's own rules ([`botc_bytecode::answers`]).
    fn button_answers(&mut self, expect: &Expect, buttons: &[ast::Button]) {
        use botc_bytecode::answers;
        let regex = match expect {
            Expect::Regex(r) => match regex::Regex::new(&r.value) {
                Ok(re) => Some(re),
                Err(_) => return, // reported already
            },
            _ => None,
        };
        for b in buttons {
            let ButtonAction::Value(v) = &b.action else { continue };
            let answer = v.value.as_str();
            let (accepted, rule) = match expect {
                Expect::Text => (true, String::new()),
                Expect::Number => (answers::number(answer).is_some(), "`expect: number` takes a number".into()),
                Expect::Integer => {
                    (answers::integer(answer).is_some(), "`expect: integer` takes a whole number".into())
                }
                Expect::Boolean => {
                    (answers::boolean(answer).is_some(), "`expect: boolean` takes yes, no, true or false".into())
                }
                Expect::Email => (answers::is_email(answer), "`expect: email` takes an email address".into()),
                Expect::Choice(choices, _) => (
                    choices.is_empty() || choices.iter().any(|c| answers::same_words(&c.value, answer)),
                    format!(
                        "the choices are {}",
                        choices.iter().map(|c| format!("`{}`", c.value)).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Expect::Regex(r) => (
                    regex.as_ref().is_none_or(|re| re.is_match(answer.trim())),
                    format!("the pattern is `{}`", r.value),
                ),
            };
            if !accepted {
                self.diags.push(
                    Diagnostic::error("E0605", v.span, format!("this ask never accepts the button's value `{answer}`"))
                        .label(format!("pressing it can only ask again: {rule}"))
                        .help("give the button a value the ask accepts, or change its `expect`"),
                );
            }
        }
    }
}

fn param_list(sig: &Signature) -> String {
    if sig.params.is_empty() {
        return "no parameters".into();
    }
    sig.params.iter().map(|(p, t)| format!("{p}: {}", t.name())).collect::<Vec<_>>().join(", ")
}
