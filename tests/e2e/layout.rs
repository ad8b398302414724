//! The shape of `src/`: no two files import each other through a chain of
//! `crate::`/`super::` paths (a circle means two rooms that are really one),
//! and no file grows past what a reader can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::repo;

/// Non-test lines a file may have.
const MAX_LINES: usize = 720;

/// Every module of `src/` (`engine::step`) with its non-test code.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(repo("src")).unwrap().with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::");
            let name = if name == "lib" || name == "main" {
                String::new()
            } else {
                name
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(name, code);
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo("src"), &mut out);
    out
}

/// The paths a file names: `crate::a::b` and `super::c`, with `{a, b::c}` groups expanded.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (start, root) in code
        .match_indices("crate::")
        .map(|(i, _)| (i, true))
        .chain(code.match_indices("super::").map(|(i, _)| (i, false)))
    {
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let after = &code[start + 7..];
        let mut segments = Vec::new();
        let mut rest = after;
        loop {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                break;
            }
            segments.push(rest[..len].to_string());
            rest = &rest[len..];
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if rest.starts_with('{') {
            // A group: each top-level item's first segment.
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in rest.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            items.push(std::mem::take(&mut item));
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            for it in items {
                let first: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let mut full = segments.clone();
                if !first.is_empty() && first != "self" {
                    full.push(first);
                }
                out.push((root, full));
            }
        } else {
            out.push((root, segments));
        }
    }
    out
}

/// Which file each file imports from.
fn imports(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let resolve = |segments: &[String]| -> Option<String> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| mods.contains_key(m))
    };
    mods.iter()
        .map(|(name, code)| {
            let here: Vec<String> = name.split("::").map(String::from).collect();
            let targets = paths(code)
                .into_iter()
                .filter_map(|(root, rest)| {
                    let full = if root {
                        rest
                    } else {
                        let mut parent = here[..here.len().saturating_sub(1)].to_vec();
                        parent.extend(rest);
                        parent
                    };
                    resolve(&full)
                })
                .filter(|t| t != name && !t.is_empty())
                .collect();
            (name.clone(), targets)
        })
        .collect()
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_file_of_src_imports_itself_through_others() {
    let mods = modules();
    assert!(mods.contains_key("engine::reconcile"), "modules found");
    let found = circles(&imports(&mods));
    assert!(found.is_empty(), "import circles between files: {found:?}");
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mods: BTreeMap<String, String> = [
        ("a".to_string(), "use crate::b::X;".to_string()),
        ("b".to_string(), "use crate::{c, d::Y};".to_string()),
        ("c".to_string(), "fn f() { crate::a::g() }".to_string()),
        ("d".to_string(), "pub struct Y;".to_string()),
        ("e".to_string(), "use super::a;".to_string()),
    ]
    .into();
    assert_eq!(
        circles(&imports(&mods)),
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
}

#[test]
fn no_file_of_src_is_too_long_to_read() {
    let mut long = Vec::new();
    for (name, code) in modules() {
        let lines = code.lines().count();
        if lines > MAX_LINES {
            long.push(format!("{name}: {lines} lines (at most {MAX_LINES})"));
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}
