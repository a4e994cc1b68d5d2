//! The layering of `server/src` and `bench/src` (docs/ARCHITECTURE.md), checked from their source
//! on every test run (`scripts/test.sh` runs the workspace's tests).
//!
//! Each file is lexed (comments dropped, strings are literals) and every path that names a module
//! of its own crate is an import: `use` trees (`crate::a::{b, c::d}`, `super::*`, `self::x`), paths
//! in code and in macro bodies (`crate::store::Store::open`, `$crate::store::Db`, a route table's
//! `challenges::create_challenge`), resolved like rustc does (`super` of an inline `mod tests` is its
//! file). An import points at the deepest file module its path names. Checked:
//!
//! - **server layers**: a top-level module of `server/src` imports only the modules [`SERVER_LAYERS`]
//!   allows it (nothing runs upward), and every top-level module is listed there;
//! - **no cycle** among the children of any module, in both crates (the top-level modules of each
//!   crate, the files of each folder); a folder's `mod.rs` and its own children are not a cycle
//!   (children use what the folder's `mod.rs` defines for them; it names them in routes and
//!   re-exports);
//! - **thin crate roots**: nothing imports an item of `lib.rs` or the bench's `main.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// What each top-level module of `server/src` may import (docs/ARCHITECTURE.md, "server/src").
/// From the bottom: the pure foundation, the store, the workers, configuration and credentials,
/// HTTP, and `startup`, which wires everything.
const SERVER_LAYERS: &[(&str, &[&str])] = &[
    // Pure rules: SIDs, dates, limits. Nothing of the crate.
    ("domain", &[]),
    ("telemetry", &[]),
    ("tls", &[]),
    // Pure functions over bytes; random bytes come from domain::sid.
    ("crypto", &["domain"]),
    // All SQL. Never HTTP, never the workers or configuration.
    ("store", &["domain"]),
    // Exception: `ApiError` maps a database error to 503/20503 with the reason
    // `store::health::unavailable_reason` finds (one list of "unavailable" errors for the API and
    // `/healthz`).
    ("error", &["store"]),
    // The server's time: the emulated clock keeps its state in the store.
    ("clock", &["store"]),
    // Background work over the store: the sweeper, and the backoff and lease reclaim that the
    // push and webhook workers share.
    ("workers", &["clock", "domain", "store"]),
    // Push and webhook delivery (payloads, senders, their workers). `push` validates credential
    // material for the API and answers in `ApiError`s.
    ("push", &["clock", "crypto", "domain", "error", "store", "workers"]),
    ("webhooks", &["clock", "crypto", "domain", "error", "store", "workers"]),
    // The flags; they build the settings of the push and webhook workers and of TLS.
    ("config", &["push", "tls", "webhooks"]),
    // Credentials and keys, read from the flags and kept in the store.
    // Authentication against the stored credentials (a short-lived cache).
    ("accounts", &["crypto", "domain", "store"]),
    // Start-up seeding of accounts and API keys from the flags.
    ("bootstrap", &["config", "crypto", "domain", "store"]),
    ("keys", &["config", "crypto", "domain", "store"]),
    // The seed file: its resources checked as the API checks them (credential material through
    // `push`, which answers in `ApiError`s) and written in one transaction.
    ("seed", &["crypto", "domain", "error", "push", "store"]),
    // HTTP only: the handlers, over everything below.
    ("api", &["accounts", "clock", "config", "crypto", "domain", "error", "push", "store", "webhooks", "workers"]),
    // Wires the layers together and serves.
    (
        "startup",
        &[
            "accounts",
            "api",
            "bootstrap",
            "clock",
            "config",
            "crypto",
            "domain",
            "error",
            "keys",
            "push",
            "seed",
            "store",
            "telemetry",
            "tls",
            "webhooks",
            "workers",
        ],
    ),
];

/// A module's path from its crate's root (`[]` is the root).
type ModPath = Vec<String>;

/// Reads a module's file: (a label for messages, its source).
type Reader<'a> = &'a dyn Fn(&[String]) -> Result<(String, String), String>;

/// A crate's file modules and the imports between them.
struct Crate {
    /// Each file module (the root, every `mod x;`) and the names of the file modules it declares.
    modules: BTreeMap<ModPath, BTreeSet<String>>,
    /// (importer, imported) → one path that made it, for the messages.
    imports: BTreeMap<(ModPath, ModPath), String>,
}

impl Crate {
    /// Loads a crate from `read(module path)` → (a label for messages, its source), starting at
    /// the root and following `mod x;` declarations.
    fn load(read: Reader) -> Result<Crate, String> {
        let mut files: BTreeMap<ModPath, (String, TokenStream, BTreeSet<String>)> = BTreeMap::new();
        let mut todo: Vec<ModPath> = vec![Vec::new()];
        while let Some(path) = todo.pop() {
            let (label, source) = read(&path)?;
            let tokens = TokenStream::from_str(&source).map_err(|e| format!("{label}: cannot lex: {e}"))?;
            let tokens: Vec<TokenTree> = tokens.into_iter().collect();
            let children = declared_modules(&tokens);
            for child in &children {
                let mut c = path.clone();
                c.push(child.clone());
                todo.push(c);
            }
            files.insert(path, (label, tokens.into_iter().collect(), children));
        }
        let modules: BTreeMap<ModPath, BTreeSet<String>> =
            files.iter().map(|(p, (_, _, children))| (p.clone(), children.clone())).collect();
        let mut imports = BTreeMap::new();
        for (path, (label, tokens, children)) in &files {
            let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
            let mut found = Vec::new();
            scan(&tokens, path, Some(children), &mut found);
            for (raw, resolved) in found {
                let Some(resolved) = resolved else { continue };
                let target = deepest_module(&modules, &resolved);
                if &target != path {
                    imports.entry((path.clone(), target)).or_insert_with(|| format!("{label}: {raw}"));
                }
            }
        }
        Ok(Crate { modules, imports })
    }

    /// The crate under `src` whose root file is `root` (`lib.rs`, `main.rs`).
    fn from_dir(src: &Path, root: &str) -> Result<Crate, String> {
        let read = |path: &[String]| {
            let candidates = match path {
                [] => vec![src.join(root)],
                _ => {
                    let rel = path.join("/");
                    vec![src.join(format!("{rel}.rs")), src.join(rel).join("mod.rs")]
                }
            };
            for file in &candidates {
                if let Ok(source) = std::fs::read_to_string(file) {
                    let label = file.strip_prefix(src).unwrap_or(file).display().to_string();
                    return Ok((label, source));
                }
            }
            Err(format!("no file for module {path:?} under {}", src.display()))
        };
        Crate::load(&read)
    }

    /// Imports from `a`'s subtree into `b`'s subtree, where both are children of `parent`.
    fn child_graph(&self, parent: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let child_of = |p: &ModPath| -> Option<String> {
            (p.len() > parent.len() && p.starts_with(parent)).then(|| p[parent.len()].clone())
        };
        for ((from, to), example) in &self.imports {
            if let (Some(a), Some(b)) = (child_of(from), child_of(to)) {
                if a != b {
                    graph.entry(a).or_default().entry(b).or_insert_with(|| example.clone());
                }
            }
        }
        graph
    }

    /// Every cycle among the children of any module, as "a → b → a (because …)".
    fn cycles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (parent, children) in &self.modules {
            if children.len() < 2 {
                continue;
            }
            let graph = self.child_graph(parent);
            for component in strongly_connected(children, &graph) {
                let mut because = Vec::new();
                for a in &component {
                    for (b, example) in graph.get(a).into_iter().flatten() {
                        if component.contains(b) {
                            because.push(format!("{a} → {b} ({example})"));
                        }
                    }
                }
                let scope = if parent.is_empty() { "crate root".to_owned() } else { parent.join("::") };
                out.push(format!("cycle among the modules of {scope}: {}", because.join("; ")));
            }
        }
        out
    }

    /// Imports of the crate root's own items (the root should only declare modules).
    fn root_imports(&self) -> Vec<String> {
        self.imports.iter().filter(|((_, to), _)| to.is_empty()).map(|(_, example)| example.clone()).collect()
    }

    /// Imports between top-level modules that `layers` does not allow, and top-level modules it
    /// does not list.
    fn layer_violations(&self, layers: &[(&str, &[&str])]) -> Vec<String> {
        let allowed: BTreeMap<&str, &[&str]> = layers.iter().copied().collect();
        let mut out = Vec::new();
        for top in self.modules.get(&Vec::new()).into_iter().flatten() {
            if !allowed.contains_key(top.as_str()) {
                out.push(format!("the top-level module {top} has no place in the layers: add it to SERVER_LAYERS"));
            }
        }
        for (from, targets) in self.child_graph(&[]) {
            for (to, example) in targets {
                let ok = allowed.get(from.as_str()).is_some_and(|a| a.contains(&to.as_str()));
                if !ok && allowed.contains_key(from.as_str()) {
                    out.push(format!("{from} may not import {to}: {example}"));
                }
            }
        }
        out
    }
}

/// The names of `mod x;` declarations (file modules) at the top of a file.
fn declared_modules(tokens: &[TokenTree]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in tokens.windows(3) {
        if let [TokenTree::Ident(m), TokenTree::Ident(name), TokenTree::Punct(semi)] = w {
            if m == "mod" && semi.as_char() == ';' {
                out.insert(name.to_string());
            }
        }
    }
    out
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!(
        (tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

/// Collects (path as written, path from the crate root) of every path in `tokens` that starts
/// with `crate`, `super`, `self` or the name of a module `module` declares (`children`, for the
/// file module itself; `None` inside an inline module). `use` groups are expanded.
fn scan(
    tokens: &[TokenTree],
    module: &[String],
    children: Option<&BTreeSet<String>>,
    out: &mut Vec<(String, Option<ModPath>)>,
) {
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(m) if m == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if body.delimiter() == Delimiter::Brace {
                        let mut inner = module.to_vec();
                        inner.push(name.to_string());
                        let body: Vec<TokenTree> = body.stream().into_iter().collect();
                        scan(&body, &inner, None, out);
                        i += 3;
                        continue;
                    }
                }
            }
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                scan(&inner, module, children, out);
            }
            TokenTree::Ident(first) => {
                let name = first.to_string();
                let after_sep = i >= 2 && is_path_sep(tokens, i - 2);
                let starts =
                    matches!(name.as_str(), "crate" | "super" | "self") || children.is_some_and(|c| c.contains(&name));
                if starts && !after_sep && is_path_sep(tokens, i + 1) {
                    i = path(tokens, i, Vec::new(), module, children, out);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Reads the path starting at `tokens[i]` (after `prefix`, inside a `use` group), records it,
/// and returns the index after it.
fn path(
    tokens: &[TokenTree],
    mut i: usize,
    mut segments: Vec<String>,
    module: &[String],
    children: Option<&BTreeSet<String>>,
    out: &mut Vec<(String, Option<ModPath>)>,
) -> usize {
    loop {
        match tokens.get(i) {
            Some(TokenTree::Ident(id)) if id != "as" => {
                segments.push(id.to_string());
                i += 1;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                // A use group: each comma-separated tree continues this path.
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for tree in inner.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
                    if !tree.is_empty() {
                        path(tree, 0, segments.clone(), module, children, out);
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        if is_path_sep(tokens, i) {
            i += 2;
        } else {
            break;
        }
    }
    if segments.last().is_some_and(|s| s == "self") && segments.len() > 1 {
        segments.pop();
    }
    let resolved = resolve(&segments, module, children);
    out.push((segments.join("::"), resolved));
    i
}

/// The path from the crate root that `segments`, written in `module`, names.
fn resolve(segments: &[String], module: &[String], children: Option<&BTreeSet<String>>) -> Option<ModPath> {
    let (first, rest) = segments.split_first()?;
    let mut base: ModPath = module.to_vec();
    let mut rest = rest;
    match first.as_str() {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop()?;
            while let Some((s, r)) = rest.split_first() {
                if s != "super" {
                    break;
                }
                base.pop()?;
                rest = r;
            }
        }
        name if children.is_some_and(|c| c.contains(name)) => base.push(name.to_owned()),
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that is a file module.
fn deepest_module(modules: &BTreeMap<ModPath, BTreeSet<String>>, path: &[String]) -> ModPath {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p)).unwrap_or_default()
}

/// The strongly connected components of more than one node (Tarjan).
fn strongly_connected(
    nodes: &BTreeSet<String>,
    graph: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".."))
}

#[test]
fn server_imports_follow_the_layers_without_cycles() -> Result<(), String> {
    let server = Crate::from_dir(&workspace().join("server/src"), "lib.rs")?;
    // The crate is read: its layers and some import of each kind are there.
    assert!(server.modules.contains_key(&vec!["api".to_owned(), "challenges".to_owned()]));
    assert!(server.imports.len() > 100, "only {} imports found", server.imports.len());
    let mut problems = server.layer_violations(SERVER_LAYERS);
    problems.extend(server.cycles());
    problems.extend(server.root_imports().into_iter().map(|e| format!("an import of lib.rs's own items: {e}")));
    assert!(problems.is_empty(), "server/src:\n{}", problems.join("\n"));
    Ok(())
}

#[test]
fn bench_modules_import_each_other_without_cycles() -> Result<(), String> {
    let bench = Crate::from_dir(&workspace().join("bench/src"), "main.rs")?;
    assert!(bench.modules.contains_key(&vec!["plan".to_owned()]));
    assert!(bench.imports.len() > 20, "only {} imports found", bench.imports.len());
    let mut problems = bench.cycles();
    problems.extend(bench.root_imports().into_iter().map(|e| format!("an import of main.rs's own items: {e}")));
    assert!(problems.is_empty(), "bench/src:\n{}", problems.join("\n"));
    Ok(())
}

/// A crate made of `files` (module path "a::b", "" for the root → source).
fn fixture(files: &[(&str, &str)]) -> Result<Crate, String> {
    let files: BTreeMap<String, String> = files.iter().map(|(p, s)| ((*p).to_owned(), (*s).to_owned())).collect();
    let read = |path: &[String]| {
        let key = path.join("::");
        files.get(&key).map(|s| (key.clone(), s.clone())).ok_or_else(|| format!("no module {key}"))
    };
    Crate::load(&read)
}

fn edges(c: &Crate) -> BTreeSet<(String, String)> {
    c.imports.keys().map(|(a, b)| (a.join("::"), b.join("::"))).collect()
}

#[test]
fn the_checker_reads_every_kind_of_path() -> Result<(), String> {
    let c = fixture(&[
        ("", "mod a; mod b; mod c; mod d; mod e;"),
        // A use group with nesting and `self`; a comment and a string naming another module.
        ("a", "use crate::{b::{self, X}, c::Y as Z}; // crate::d::nothing\nconst S: &str = \"crate::e::no\";"),
        // `super` of an inline test module is its file; `super::super` climbs two levels.
        ("b", "mod inner; fn f() {} #[cfg(test)] mod tests { use super::super::c::Y; use super::f; }"),
        ("b::inner", "fn g() { super::super::d::h(); }"),
        // A macro body's `$crate` path, and a bare child-module name.
        ("c", "mod kid; macro_rules! m { () => { $crate::e::E }; } fn k() { kid::go(); }"),
        ("c::kid", "pub fn go() {}"),
        ("d", "pub fn h() {}"),
        ("e", "pub struct E;"),
    ])?;
    let expected: BTreeSet<(String, String)> =
        [("a", "b"), ("a", "c"), ("b", "c"), ("b::inner", "d"), ("c", "c::kid"), ("c", "e")]
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
    assert_eq!(edges(&c), expected);
    assert!(c.cycles().is_empty() && c.root_imports().is_empty());
    Ok(())
}

#[test]
fn the_checker_finds_cycles_upward_imports_and_root_items() -> Result<(), String> {
    // store → api runs upward; api::a ↔ api::b is a cycle between files of one folder (api's
    // mod.rs and its children are not); x → y → z → x spans three top-level modules.
    let c = fixture(&[
        ("", "mod api; mod store; mod x; mod y; mod z; pub struct RootItem;"),
        ("api", "mod a; mod b; pub struct State; fn routes() { a::f(); b::g(); }"),
        ("api::a", "use super::State; use super::b::G; pub fn f() {}"),
        ("api::b", "use super::a::f; pub fn g() {} pub struct G;"),
        ("store", "use crate::api::State;"),
        ("x", "use crate::y::Y;"),
        ("y", "use crate::z::Z; pub struct Y;"),
        ("z", "use crate::x; use crate::RootItem; pub struct Z;"),
    ])?;
    let layers: &[(&str, &[&str])] = &[("api", &["store"]), ("store", &[]), ("x", &["y"]), ("y", &["z"])];
    let violations = c.layer_violations(layers);
    assert!(violations.iter().any(|v| v.starts_with("store may not import api")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("module z has no place")), "{violations:?}");
    let cycles = c.cycles();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(cycles.iter().any(|c| c.starts_with("cycle among the modules of api: a → b")), "{cycles:?}");
    assert!(cycles.iter().any(|c| c.contains("x → y") && c.contains("y → z") && c.contains("z → x")), "{cycles:?}");
    assert_eq!(c.root_imports(), vec!["z: crate::RootItem".to_owned()]);
    Ok(())
}
