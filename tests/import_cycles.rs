//! No two files of `src/` import each other, directly or around a circle.
//!
//! This reads every crate under `src/` (the library, each binary) from its
//! root file along its `mod` declarations, and every file's imports: `use`
//! declarations (expanded: `use a::{b, c::*}`) and inline paths that start
//! with `crate::`, `super::` or `self::`. Each import is resolved to the file
//! that defines the item, following re-exports (`pub use`, and `use` items a
//! child module reaches through `super::`) and glob imports, so a module's
//! `mod.rs` that re-exports a child does not count as that child's. An
//! import of a module counts as an import of its file. Then it looks for
//! circles (strongly connected components) in the file graph and names
//! every import along them.
//!
//! [`ENFORCED`] lists the folders where a circle fails the test; circles
//! elsewhere are printed. `bench/import-cycles.sh` runs it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a circle fails the test (paths relative to the crate, `/`-separated).
/// Make it `&["src/"]` once no file of `src/` takes part in one.
const ENFORCED: &[&str] = &["src/"];

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Rust source as tokens with their line numbers, comments, strings and
/// character literals removed.
fn tokenize(source: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to].iter().filter(|c| **c == '\n').count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == '*' {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i.min(chars.len()), &mut line);
        } else if let Some(end) = raw_string_end(&chars, i) {
            count_lines(i, end, &mut line);
            i = end;
        } else if c == '"' || (c == 'b' && next == '"') {
            let start = i;
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            count_lines(start, i.min(chars.len()), &mut line);
        } else if c == '\'' || (c == 'b' && next == '\'') {
            // A character literal, or a lifetime (`'a`, no closing quote).
            let open = if c == 'b' { i + 1 } else { i };
            if chars.get(open + 1) == Some(&'\\') {
                i = open + 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(open + 2) == Some(&'\'') {
                i = open + 3;
            } else {
                i = open + 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            if c == 'r' && next == '#' {
                i += 2;
            }
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push((Token::Ident(word.trim_start_matches("r#").to_owned()), line));
        } else if c == ':' && next == ':' {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i`.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    loop {
        if j >= chars.len() {
            return Some(j);
        }
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
}

// ---------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------

type ModId = usize;

#[derive(Debug, Default)]
struct Module {
    file: usize,
    parent: Option<ModId>,
    root: ModId,
    children: HashMap<String, ModId>,
    /// Items defined here (at the module's own level).
    items: BTreeSet<String>,
    /// Names bound by `use` here: name → path.
    bindings: HashMap<String, Vec<String>>,
    /// `use path::*` here.
    globs: Vec<Vec<String>>,
}

/// An import in a file: the path, the module it is written in, its line.
#[derive(Debug)]
struct Import {
    module: ModId,
    path: Vec<String>,
    line: usize,
    glob: bool,
}

#[derive(Default)]
struct Crate {
    files: Vec<PathBuf>,
    modules: Vec<Module>,
    imports: Vec<Vec<Import>>,
}

const ITEM_KEYWORDS: [&str; 9] = [
    "fn", "struct", "enum", "trait", "type", "const", "static", "union", "mod",
];

impl Crate {
    /// Reads the crate whose root file is `root`.
    fn load(&mut self, root: &Path) {
        let module = self.modules.len();
        self.modules.push(Module {
            root: module,
            ..Module::default()
        });
        self.load_file(root, module, true);
    }

    /// Reads `path` as the file of `module`. `owns_dir`: its child modules'
    /// files live in its directory (`lib.rs`, `main.rs`, `mod.rs`), not in a
    /// directory named after it.
    fn load_file(&mut self, path: &Path, module: ModId, owns_dir: bool) {
        let file = self.files.len();
        self.files.push(path.to_owned());
        self.imports.push(Vec::new());
        self.modules[module].file = file;
        let source = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let tokens = tokenize(&source);
        let child_dir = if owns_dir {
            path.parent().unwrap().to_owned()
        } else {
            path.with_extension("")
        };
        // (module, the brace depth its body is at)
        let mut stack: Vec<(ModId, usize)> = vec![(module, 0)];
        let mut depth = 0;
        let mut path_attribute: Option<String> = None;
        let mut i = 0;
        while i < tokens.len() {
            let (current, body_depth) = *stack.last().unwrap();
            let at_item_level = depth == body_depth;
            match &tokens[i].0 {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth -= 1;
                    if stack.len() > 1 && depth < body_depth {
                        stack.pop();
                    }
                }
                Token::Punct('#') => {
                    // `#[path = "file.rs"]`
                    if let (Some((Token::Ident(word), _)), Some(value)) =
                        (tokens.get(i + 2), attribute_string(&source, &tokens, i))
                        && word == "path"
                    {
                        path_attribute = Some(value);
                    }
                }
                Token::Ident(word)
                    if word == "use"
                        && !matches!(tokens.get(i + 1), Some((Token::Punct('<'), _))) =>
                {
                    i = self.read_use(&tokens, i + 1, file, current);
                    continue;
                }
                Token::Ident(word)
                    if (word == "crate" || word == "super" || word == "self")
                        && matches!(tokens.get(i + 1), Some((Token::PathSep, _)))
                        && !matches!(
                            i.checked_sub(1).map(|p| &tokens[p].0),
                            Some(Token::Punct('$') | Token::PathSep)
                        )
                        && !matches!(i.checked_sub(1).map(|p| &tokens[p].0), Some(Token::Ident(w)) if w == "in") =>
                {
                    let (path, end) = read_path(&tokens, i);
                    self.imports[file].push(Import {
                        module: current,
                        path,
                        line: tokens[i].1,
                        glob: false,
                    });
                    i = end;
                    continue;
                }
                Token::Ident(word) if word == "macro_rules" && at_item_level => {
                    if let Some((Token::Ident(name), _)) = tokens.get(i + 2) {
                        self.modules[current].items.insert(name.clone());
                    }
                }
                Token::Ident(word) if at_item_level && ITEM_KEYWORDS.contains(&word.as_str()) => {
                    if let Some((Token::Ident(name), _)) = tokens.get(i + 1) {
                        if word == "mod" {
                            let child = self.modules.len();
                            self.modules.push(Module {
                                parent: Some(current),
                                root: self.modules[current].root,
                                ..Module::default()
                            });
                            self.modules[current].children.insert(name.clone(), child);
                            let inline = matches!(tokens.get(i + 2), Some((Token::Punct('{'), _)));
                            if inline {
                                self.modules[child].file = file;
                                depth += 1;
                                stack.push((child, depth));
                                i += 3;
                                path_attribute = None;
                                continue;
                            }
                            let dir = if stack.len() > 1 {
                                // `mod a { mod b; }`: rare; look under a/.
                                child_dir.join(name)
                            } else {
                                child_dir.clone()
                            };
                            let (child_path, owns) = match path_attribute.take() {
                                Some(relative) => (path.parent().unwrap().join(relative), true),
                                None => {
                                    let flat = dir.join(format!("{name}.rs"));
                                    if flat.exists() {
                                        (flat, false)
                                    } else {
                                        (dir.join(name).join("mod.rs"), true)
                                    }
                                }
                            };
                            if child_path.exists() {
                                self.load_file(&child_path, child, owns);
                            }
                        } else {
                            self.modules[current].items.insert(name.clone());
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Reads a `use` tree from `i` (after `use`) to its `;`.
    fn read_use(
        &mut self,
        tokens: &[(Token, usize)],
        i: usize,
        file: usize,
        module: ModId,
    ) -> usize {
        let line = tokens.get(i).map_or(0, |t| t.1);
        let mut end = i;
        while end < tokens.len() && tokens[end].0 != Token::Punct(';') {
            end += 1;
        }
        let mut leaves = Vec::new();
        expand_tree(&tokens[i..end], Vec::new(), &mut leaves);
        for (path, binding, glob) in leaves {
            if path.is_empty() {
                continue;
            }
            if glob {
                self.modules[module].globs.push(path.clone());
            } else if let Some(name) = binding.filter(|name| name != "_") {
                self.modules[module].bindings.insert(name, path.clone());
            }
            self.imports[file].push(Import {
                module,
                path,
                line,
                glob,
            });
        }
        end + 1
    }

    /// The module a path's first segments name, and the rest: `None` for a
    /// path outside the crate.
    fn start<'p>(
        &self,
        from: ModId,
        path: &'p [String],
        depth: usize,
    ) -> Option<(ModId, &'p [String])> {
        let mut module = from;
        let mut rest = path;
        match rest.first()?.as_str() {
            "crate" => Some((self.modules[from].root, &rest[1..])),
            "self" => Some((from, &rest[1..])),
            "super" => {
                while rest.first().map(String::as_str) == Some("super") {
                    module = self.modules[module].parent?;
                    rest = &rest[1..];
                }
                Some((module, rest))
            }
            first => {
                if let Some(child) = self.modules[module].children.get(first) {
                    return Some((*child, &rest[1..]));
                }
                if let Some(bound) = self.modules[module].bindings.get(first)
                    && bound.as_slice() != &path[..1]
                    && let Some(Target::Module(target)) = self.resolve(from, bound, depth + 1)
                {
                    return Some((target, &rest[1..]));
                }
                // Anything else is another crate.
                None
            }
        }
    }

    /// What a path written in `from` names.
    fn resolve(&self, from: ModId, path: &[String], depth: usize) -> Option<Target> {
        if depth > 16 {
            return None;
        }
        let (mut module, rest) = self.start(from, path, depth)?;
        for (index, segment) in rest.iter().enumerate() {
            if segment == "self" {
                continue;
            }
            if let Some(child) = self.modules[module].children.get(segment) {
                module = *child;
                continue;
            }
            if let Some(bound) = self.modules[module].bindings.get(segment)
                && index + 1 < rest.len()
                && let Some(Target::Module(target)) = self.resolve(module, bound, depth + 1)
            {
                module = target;
                continue;
            }
            return Some(Target::Item(module, segment.clone()));
        }
        Some(Target::Module(module))
    }

    /// The file that defines `name` as seen from `module`.
    fn item_file(&self, module: ModId, name: &str, depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        let here = &self.modules[module];
        if here.items.contains(name) || here.children.contains_key(name) {
            return Some(here.file);
        }
        if let Some(path) = here.bindings.get(name) {
            return match self.resolve(module, path, depth + 1)? {
                Target::Module(target) => Some(self.modules[target].file),
                Target::Item(target, item) => self.item_file(target, &item, depth + 1),
            };
        }
        for glob in &here.globs {
            if let Some(Target::Module(target)) = self.resolve(module, glob, depth + 1)
                && target != module
                && let Some(file) = self.item_file(target, name, depth + 1)
            {
                return Some(file);
            }
        }
        None
    }

    fn target_file(&self, import: &Import) -> Option<usize> {
        match self.resolve(import.module, &import.path, 0)? {
            Target::Module(module) => Some(self.modules[module].file),
            Target::Item(module, name) if import.glob => {
                let _ = name;
                Some(self.modules[module].file)
            }
            Target::Item(module, name) => self
                .item_file(module, &name, 0)
                .or(Some(self.modules[module].file)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Module(ModId),
    Item(ModId, String),
}

/// The string value of an attribute `#[name = "value"]` starting at `i`.
fn attribute_string(source: &str, tokens: &[(Token, usize)], i: usize) -> Option<String> {
    // Strings are not tokens: read the attribute's line from the source.
    let line = source.lines().nth(tokens[i].1 - 1)?;
    let (_, after) = line.split_once("path")?;
    let value = after
        .trim_start()
        .strip_prefix('=')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value.split('"').next()?.to_owned())
}

/// `a::b::c` from `i`: the segments and where the path ends.
fn read_path(tokens: &[(Token, usize)], mut i: usize) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    while let Some((Token::Ident(word), _)) = tokens.get(i) {
        path.push(word.clone());
        if matches!(tokens.get(i + 1), Some((Token::PathSep, _)))
            && matches!(tokens.get(i + 2), Some((Token::Ident(_), _)))
        {
            i += 2;
        } else {
            i += 1;
            break;
        }
    }
    (path, i)
}

/// Expands a use tree into (path, the name it binds, glob).
fn expand_tree(
    tokens: &[(Token, usize)],
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>, bool)>,
) {
    // Split the top level on commas (outside braces).
    let mut parts: Vec<&[(Token, usize)]> = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (index, (token, _)) in tokens.iter().enumerate() {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                parts.push(&tokens[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    for part in parts {
        let mut path = prefix.clone();
        let mut i = 0;
        // A leading `::` (another crate in 2015 style) or visibility noise.
        while i < part.len() {
            match &part[i].0 {
                Token::Ident(word) if word == "as" => {
                    let binding = match part.get(i + 1) {
                        Some((Token::Ident(name), _)) => Some(name.clone()),
                        _ => None,
                    };
                    out.push((path.clone(), binding, false));
                    path.clear();
                    break;
                }
                Token::Ident(word) => {
                    path.push(word.clone());
                    i += 1;
                }
                Token::PathSep => i += 1,
                Token::Punct('*') => {
                    out.push((path.clone(), None, true));
                    path.clear();
                    break;
                }
                Token::Punct('{') => {
                    let close = part.len()
                        - 1
                        - part
                            .iter()
                            .rev()
                            .position(|(t, _)| *t == Token::Punct('}'))
                            .unwrap_or(0);
                    expand_tree(&part[i + 1..close], path.clone(), out);
                    path.clear();
                    break;
                }
                _ => i += 1,
            }
        }
        if path.len() > prefix.len() || (path == prefix && !path.is_empty() && part.is_empty()) {
            let binding = match path.last().map(String::as_str) {
                Some("self") => {
                    path.pop();
                    path.last().cloned()
                }
                other => other.map(str::to_owned),
            };
            out.push((path, binding, false));
        }
    }
}

// ---------------------------------------------------------------------------
// Circles
// ---------------------------------------------------------------------------

/// Strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeMap<usize, BTreeSet<usize>>, files: usize) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let targets: Vec<usize> = self.edges.get(&v).into_iter().flatten().copied().collect();
            for w in targets {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: vec![None; files],
        low: vec![0; files],
        on_stack: vec![false; files],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..files {
        if walk.index[v].is_none() {
            walk.visit(v);
        }
    }
    walk.found
}

/// Every crate root under `src/`: the library and each binary.
fn crate_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|name| src.join(name))
        .filter(|path| path.exists())
        .collect();
    if let Ok(entries) = fs::read_dir(src.join("bin")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                roots.push(path);
            } else if path.join("main.rs").exists() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    roots.sort();
    roots
}

/// The circles among the files under `src/`, each as the lines that make it.
fn find_circles(src: &Path) -> Vec<(Vec<String>, Vec<String>)> {
    let mut krate = Crate::default();
    for root in crate_roots(src) {
        krate.load(&root);
    }
    let base = src.parent().unwrap();
    let name = |file: usize| {
        krate.files[file]
            .strip_prefix(base)
            .unwrap_or(&krate.files[file])
            .to_string_lossy()
            .replace('\\', "/")
    };
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut why: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    for (file, imports) in krate.imports.iter().enumerate() {
        for import in imports {
            if let Some(target) = krate.target_file(import)
                && target != file
            {
                edges.entry(file).or_default().insert(target);
                why.entry((file, target)).or_default().push(format!(
                    "{}:{} imports {} from {}",
                    name(file),
                    import.line,
                    import.path.join("::"),
                    name(target)
                ));
            }
        }
    }
    circles(&edges, krate.files.len())
        .into_iter()
        .map(|component| {
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let lines = why
                .iter()
                .filter(|((from, to), _)| members.contains(from) && members.contains(to))
                .flat_map(|(_, lines)| lines.iter().cloned())
                .collect();
            (component.into_iter().map(name).collect(), lines)
        })
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_circle_between_files_where_enforced() {
    let found = find_circles(&src());
    let mut failing = Vec::new();
    let mut elsewhere = String::new();
    for (files, lines) in &found {
        let enforced = files
            .iter()
            .any(|file| ENFORCED.iter().any(|prefix| file.starts_with(prefix)));
        let report = format!("circle: {}\n  {}", files.join(" → "), lines.join("\n  "));
        if enforced {
            failing.push(report);
        } else {
            elsewhere.push_str(&format!("\n(not enforced yet) {report}"));
        }
    }
    // One print, so that the test harness's lines do not cut into it.
    println!("{elsewhere}");
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

// ---------------------------------------------------------------------------
// The checker's own tests, on scratch crates
// ---------------------------------------------------------------------------

fn scratch(files: &[(&str, &str)]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "import-cycles-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join("src").join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir.join("src")
}

#[test]
fn two_files_that_import_each_other_are_a_circle() {
    let src = scratch(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "pub struct B;\nfn f() -> super::a::A { todo!() }\n"),
    ]);
    let found = find_circles(&src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, ["src/a.rs", "src/b.rs"]);
    assert_eq!(found[0].1.len(), 2, "{found:?}");
}

#[test]
fn a_circle_through_a_brace_tree_and_a_glob_is_found() {
    let src = scratch(&[
        ("lib.rs", "mod m;\n"),
        ("m/mod.rs", "mod x;\nmod y;\nmod z;\n"),
        (
            "m/x.rs",
            "use super::{y::{self, Y}, z::*};\npub struct X;\n",
        ),
        ("m/y.rs", "pub struct Y;\n"),
        ("m/z.rs", "pub(crate) fn z() {}\nuse crate::m::x::X;\n"),
    ]);
    let found = find_circles(&src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, ["src/m/x.rs", "src/m/z.rs"]);
}

#[test]
fn re_exports_and_test_modules_are_no_circle() {
    let src = scratch(&[
        (
            "lib.rs",
            "mod a;\nmod b;\npub use a::A;\n/// `crate::b` in a comment\nconst S: &str = \"crate::b::B\";\n",
        ),
        // b uses A through the root's re-export: an import of a.rs, not lib.rs.
        (
            "b.rs",
            "use crate::A;\npub struct B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        (
            "a.rs",
            "pub struct A<'a>(&'a str);\nfn c() -> char { '{' }\n",
        ),
    ]);
    assert_eq!(find_circles(&src), Vec::<(Vec<String>, Vec<String>)>::new());
}
