//! Glob expansion over the filesystem: which paths match an input's `paths`.
//!
//! Paths are bytes on Linux: names that are not UTF-8 (`caf\xe9.log`) are matched and returned
//! as they are (the event shows a lossy UTF-8 form). The dialect is the `glob` crate's (and
//! close to Go's `filepath.Glob`): `*` and `?` within one component, `[abc]`, `[a-z]`, `[!x]`,
//! and `**` as a whole component for zero or more directories.
//!
//! The walk is iterative (no recursion on input), visits every directory at most once per
//! pattern position, keyed by (device, inode), so symlink loops (`ln -s . sub/l1`) end, and
//! checks a cancellation flag as it goes, so a scan of a huge tree never delays a stop.
//! Directories that cannot be listed are reported: files below them are not taken for removed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component as PathComponent, Path, PathBuf};

use super::identity::Stat;

/// Directory levels `**` descends below its base, however deep the tree.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Bytes that must appear as they are.
    Literal(Vec<u8>),
    /// `?`: one character (a UTF-8 sequence, or one byte that is not UTF-8).
    One,
    /// `*`: any bytes.
    Any,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A component without wildcards.
    Literal(OsString),
    Pattern(Vec<Token>),
    /// `**`: zero or more directories.
    Recursive,
}

/// One compiled glob (an absolute path pattern).
#[derive(Debug, Clone)]
pub struct Glob {
    /// The directory the walk starts from (the literal components before the first wildcard).
    root: PathBuf,
    parts: Vec<Part>,
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn parse_component(s: &str) -> Result<Vec<Token>, String> {
    let b = s.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    let flush = |lit: &mut Vec<u8>, out: &mut Vec<Token>| {
        if !lit.is_empty() {
            out.push(Token::Literal(std::mem::take(lit)));
        }
    };
    while i < b.len() {
        match b[i] {
            b'*' => {
                if i + 1 < b.len() && b[i + 1] == b'*' {
                    return Err(format!(
                        "`**` must be a whole path component (as in /var/log/**/*.log), found in {s:?}"
                    ));
                }
                flush(&mut lit, &mut out);
                if out.last() != Some(&Token::Any) {
                    out.push(Token::Any);
                }
                i += 1;
            }
            b'?' => {
                flush(&mut lit, &mut out);
                out.push(Token::One);
                i += 1;
            }
            b'[' => {
                flush(&mut lit, &mut out);
                let (tok, next) = parse_class(s, i)?;
                out.push(tok);
                i = next;
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    flush(&mut lit, &mut out);
    Ok(out)
}

/// `[...]` starting at byte `start` of `s`; returns the token and the index after `]`.
fn parse_class(s: &str, start: usize) -> Result<(Token, usize), String> {
    let body = &s[start + 1..];
    let mut chars = body.char_indices().peekable();
    let mut negated = false;
    if let Some((_, '!')) = chars.peek() {
        negated = true;
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while let Some((idx, c)) = chars.next() {
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, start + 1 + idx + 1));
        }
        first = false;
        let mut hi = c;
        if let Some(&(_, '-')) = chars.peek() {
            let mut ahead = chars.clone();
            ahead.next();
            if let Some(&(_, end)) = ahead.peek() {
                if end != ']' {
                    chars.next();
                    chars.next();
                    hi = end;
                }
            }
        }
        if hi < c {
            return Err(format!("invalid range {c}-{hi} in {s:?}"));
        }
        ranges.push((c, hi));
    }
    Err(format!("unclosed `[` in {s:?}"))
}

/// The next character of `name` at `i`: (char, byte length). Bytes that are not UTF-8 are
/// one character each (U+FFFD).
fn next_char(name: &[u8], i: usize) -> (char, usize) {
    let rest = &name[i..];
    let len = match rest[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    };
    match rest.get(..len).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => (s.chars().next().unwrap_or('\u{fffd}'), len),
        None => ('\u{fffd}', 1),
    }
}

/// Does `name` (one path component, as bytes) match `tokens`? Backtracking over `*` only,
/// without recursion: the classic two-pointer wildcard match.
fn match_component(tokens: &[Token], name: &[u8]) -> bool {
    let (mut t, mut n) = (0usize, 0usize);
    // Position to resume from after the last `*`: (token index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if t < tokens.len() {
            let advanced = match &tokens[t] {
                Token::Any => {
                    star = Some((t + 1, n));
                    t += 1;
                    continue;
                }
                Token::Literal(l) => {
                    if name[n..].starts_with(l) {
                        n += l.len();
                        true
                    } else {
                        false
                    }
                }
                Token::One => {
                    if n < name.len() {
                        n += next_char(name, n).1;
                        true
                    } else {
                        false
                    }
                }
                Token::Class { negated, ranges } => {
                    if n < name.len() {
                        let (c, len) = next_char(name, n);
                        let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inside != *negated {
                            n += len;
                            true
                        } else {
                            false
                        }
                    } else {
                        false
                    }
                }
            };
            if advanced {
                t += 1;
                continue;
            }
        } else if n == name.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character, or fail.
        match star {
            Some((st, sn)) if sn < name.len() => {
                let next = sn + next_char(name, sn).1;
                star = Some((st, next));
                t = st;
                n = next;
            }
            _ => return false,
        }
    }
}

impl Glob {
    /// Compile an absolute glob.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let path = Path::new(pattern);
        let mut root = PathBuf::new();
        let mut parts = Vec::new();
        for comp in path.components() {
            match comp {
                PathComponent::RootDir | PathComponent::Prefix(_) if parts.is_empty() => {
                    root.push(comp);
                }
                PathComponent::CurDir => {}
                PathComponent::Normal(os) => {
                    let s = os.to_string_lossy();
                    let part = if s == "**" {
                        Part::Recursive
                    } else if has_magic(&s) {
                        Part::Pattern(parse_component(&s)?)
                    } else {
                        Part::Literal(os.to_os_string())
                    };
                    if parts.is_empty() {
                        if let Part::Literal(l) = &part {
                            root.push(l);
                            continue;
                        }
                    }
                    parts.push(part);
                }
                other => {
                    let lit = other.as_os_str().to_os_string();
                    if parts.is_empty() {
                        root.push(&lit);
                    } else {
                        parts.push(Part::Literal(lit));
                    }
                }
            }
        }
        if parts.is_empty() {
            // A literal path: the file itself is the last part.
            let name = root.file_name().map(OsStr::to_os_string);
            if let Some(name) = name {
                root.pop();
                parts.push(Part::Literal(name));
            }
        }
        Ok(Glob { root, parts })
    }

    /// Does `path` match? (For paths named by change notifications.)
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.root) else {
            return false;
        };
        let names: Vec<&[u8]> = rest
            .components()
            .filter_map(|c| match c {
                PathComponent::Normal(n) => Some(n.as_bytes()),
                _ => None,
            })
            .collect();
        // (part index, name index) pairs still possible; `**` fans out without recursion.
        let mut states = vec![(0usize, 0usize)];
        let mut seen = HashSet::new();
        while let Some((p, n)) = states.pop() {
            if !seen.insert((p, n)) {
                continue;
            }
            if p == self.parts.len() {
                if n == names.len() {
                    return true;
                }
                continue;
            }
            match &self.parts[p] {
                Part::Recursive => {
                    // Zero directories, or one more (never the file name itself).
                    states.push((p + 1, n));
                    if n + 1 < names.len() {
                        states.push((p, n + 1));
                    }
                }
                Part::Literal(l) => {
                    if n < names.len() && names[n] == l.as_bytes() {
                        states.push((p + 1, n + 1));
                    }
                }
                Part::Pattern(t) => {
                    if n < names.len() && match_component(t, names[n]) {
                        states.push((p + 1, n + 1));
                    }
                }
            }
        }
        false
    }
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Matching paths (any file type; the caller checks), sorted, without duplicates, each
    /// with its own metadata (a symlink's, not its target's) when the scan has it: for a
    /// name matched in a listed directory, a stat relative to the open directory, without
    /// walking the path again (thousands of files are looked at every `check_interval`).
    pub paths: Vec<(PathBuf, Option<Stat>)>,
    /// Directories that could not be listed (permissions, I/O errors): whatever is below
    /// them was not seen, which does not mean it is gone.
    pub unlistable: Vec<PathBuf>,
    /// The scan was stopped early (shutdown): nothing may be concluded from what is missing.
    pub cancelled: bool,
}

/// Expand every glob. `cancelled` is polled as the walk goes.
pub fn scan(globs: &[Glob], cancelled: &dyn Fn() -> bool) -> ScanResult {
    let mut res = ScanResult::default();
    let mut polled = 0u32;
    for g in globs {
        // (directory, part index, depth below the root).
        let mut stack: Vec<(PathBuf, usize, usize)> = vec![(g.root.clone(), 0, 0)];
        // (device, inode, part index) of every directory entered for this glob.
        let mut visited: HashSet<(u64, u64, usize)> = HashSet::new();
        while let Some((dir, p, depth)) = stack.pop() {
            polled += 1;
            if polled % 64 == 0 && cancelled() {
                res.cancelled = true;
                return res;
            }
            let Ok(md) = std::fs::metadata(&dir) else {
                continue;
            };
            if !md.is_dir() || !visited.insert((md.dev(), md.ino(), p)) {
                continue;
            }
            let last = p + 1 == g.parts.len();
            match &g.parts[p] {
                Part::Literal(name) => {
                    let child = dir.join(name);
                    if last {
                        match std::fs::symlink_metadata(&child) {
                            Ok(md) => res.paths.push((child, Some(Stat::of(&md)))),
                            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                                res.unlistable.push(dir.clone());
                            }
                            Err(_) => {}
                        }
                    } else {
                        stack.push((child, p + 1, depth));
                    }
                }
                Part::Pattern(tokens) => {
                    let Some(entries) = list(&dir, &mut res) else {
                        continue;
                    };
                    for e in entries {
                        if !match_component(tokens, e.file_name().as_bytes()) {
                            continue;
                        }
                        if last {
                            res.paths.push((e.path(), own_stat(&e)));
                        } else {
                            stack.push((e.path(), p + 1, depth));
                        }
                    }
                }
                Part::Recursive => {
                    // Zero directories here...
                    if last {
                        // `dir/**` alone: everything below, as files of the next levels.
                        let Some(entries) = list(&dir, &mut res) else {
                            continue;
                        };
                        for e in entries {
                            let child = e.path();
                            if may_be_dir(&e) && depth < MAX_DEPTH {
                                stack.push((child.clone(), p, depth + 1));
                            }
                            res.paths.push((child, own_stat(&e)));
                        }
                        continue;
                    }
                    stack.push((dir.clone(), p + 1, depth));
                    // ...or one more level (directories only; metadata() filters above).
                    if depth >= MAX_DEPTH {
                        continue;
                    }
                    let Some(entries) = list(&dir, &mut res) else {
                        continue;
                    };
                    for e in entries {
                        if may_be_dir(&e) {
                            stack.push((e.path(), p, depth + 1));
                        }
                    }
                }
            }
        }
    }
    // In the order of components (`a/x` before `a.old/x`), compared as bytes with `/` below
    // every other byte: the same order for these paths (joined from normalised components),
    // without the cost of splitting them, which is more than the rest of a rescan of idle
    // files. Equal bytes are the same path.
    res.paths
        .sort_by(|a, b| path_order(a.0.as_os_str().as_bytes(), b.0.as_os_str().as_bytes()));
    res.paths
        .dedup_by(|a, b| a.0.as_os_str().as_bytes() == b.0.as_os_str().as_bytes());
    res.unlistable.sort();
    res.unlistable.dedup();
    res
}

/// Normalised paths in the order `Path::cmp` gives them: bytes, with `/` first.
fn path_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |c: &u8| if *c == b'/' { 0u16 } else { *c as u16 + 1 };
    a.iter().map(rank).cmp(b.iter().map(rank))
}

/// The entry's own metadata (a symlink's, not its target's), taken relative to the open
/// directory.
fn own_stat(e: &std::fs::DirEntry) -> Option<Stat> {
    e.metadata().ok().map(|md| Stat::of(&md))
}

/// An entry that may be a directory to descend into (a symlink may point at one).
fn may_be_dir(e: &std::fs::DirEntry) -> bool {
    e.file_type().map_or(true, |t| t.is_dir() || t.is_symlink())
}

/// The entries of `dir`, or `None` (recorded) when it cannot be listed.
fn list(dir: &Path, res: &mut ScanResult) -> Option<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut out = Vec::new();
            for e in rd {
                match e {
                    Ok(e) => out.push(e),
                    Err(err) => {
                        tracing::debug!(dir = %dir.display(), error = %err, "cannot read a directory entry");
                        res.unlistable.push(dir.to_path_buf());
                        break;
                    }
                }
            }
            Some(out)
        }
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot list a directory of the globs");
            res.unlistable.push(dir.to_path_buf());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, name: &[u8]) -> bool {
        match_component(&parse_component(pat).unwrap(), name)
    }

    #[test]
    fn components() {
        assert!(m("*.log", b"a.log"));
        assert!(m("*.log", b".hidden.log"));
        assert!(m("*.log", b"caf\xe9.log"), "names that are not UTF-8 match");
        assert!(!m("*.log", b"a.log.1"));
        assert!(m("*.log*", b"a.log.1"));
        assert!(m("a?c", "aéc".as_bytes()), "? is one character");
        assert!(m("a?c", b"a\xffc"), "or one byte that is not UTF-8");
        assert!(!m("a?c", b"ac"));
        assert!(m("[ab]x", b"bx"));
        assert!(!m("[!ab]x", b"bx"));
        assert!(m("[a-c]*", b"c.log"));
        assert!(m("[]]", b"]"));
        assert!(m("*a*b*c", b"xxaxxbxxc"));
        assert!(!m("*a*b*c", b"xxaxxbxx"));
        assert!(parse_component("[abc").is_err());
        assert!(parse_component("a**b").is_err());
    }

    #[test]
    fn whole_paths() {
        let g = Glob::new("/var/log/**/*.log").unwrap();
        assert!(g.matches(Path::new("/var/log/a.log")));
        assert!(g.matches(Path::new("/var/log/x/y/a.log")));
        assert!(!g.matches(Path::new("/var/log/x/a.txt")));
        assert!(!g.matches(Path::new("/var/lib/a.log")));
        let g = Glob::new("/srv/*/logs/x.log").unwrap();
        assert!(g.matches(Path::new("/srv/app/logs/x.log")));
        assert!(!g.matches(Path::new("/srv/app/other/logs/x.log")));
        let g = Glob::new("/var/log/app.log").unwrap();
        assert!(g.matches(Path::new("/var/log/app.log")));
        assert!(!g.matches(Path::new("/var/log/app.log.1")));
    }

    #[test]
    fn symlink_loops_end_and_names_are_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("L/sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::os::unix::fs::symlink(".", sub.join("l1")).unwrap();
        std::os::unix::fs::symlink("..", sub.join("l2")).unwrap();
        std::fs::write(sub.join("a.log"), b"x\n").unwrap();
        let odd = sub.join(OsStr::from_bytes(b"caf\xe9.log"));
        std::fs::write(&odd, b"x\n").unwrap();
        let g = Glob::new(&format!("{}/L/**/*.log", dir.path().display())).unwrap();
        let r = scan(&[g], &|| false);
        let paths: Vec<_> = r.paths.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(paths, vec![sub.join("a.log"), odd], "{r:?}");
        assert!(r
            .paths
            .iter()
            .all(|(_, st)| st.is_some_and(|s| s.kind == super::super::identity::Kind::File)));
        assert!(!r.cancelled);
        let g = Glob::new(&format!("{}/L/**/*.log", dir.path().display())).unwrap();
        let r = scan(&[g], &|| true);
        assert!(r.cancelled || r.paths.len() == 2);
    }

    #[test]
    fn paths_sort_by_component_and_overlapping_globs_give_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "a.old", "a-b"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("x.log"), b"x\n").unwrap();
        }
        let root = dir.path().display().to_string();
        let globs = [
            Glob::new(&format!("{root}/*/x.log")).unwrap(),
            Glob::new(&format!("{root}/a/x.log")).unwrap(),
            Glob::new(&format!("{root}/**/*.log")).unwrap(),
        ];
        let r = scan(&globs, &|| false);
        let paths: Vec<_> = r.paths.iter().map(|(p, _)| p.clone()).collect();
        let want: Vec<_> = ["a", "a-b", "a.old"]
            .iter()
            .map(|d| dir.path().join(d).join("x.log"))
            .collect();
        assert_eq!(paths, want, "Path order (a/ first), once each");
        let mut by_path = want.clone();
        by_path.sort();
        assert_eq!(by_path, want, "the same order as Path::cmp");
    }

    #[test]
    fn literal_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), b"x").unwrap();
        let lit = Glob::new(&format!("{}/a.log", dir.path().display())).unwrap();
        let missing = Glob::new(&format!("{}/nope/*.log", dir.path().display())).unwrap();
        let r = scan(&[lit, missing], &|| false);
        let paths: Vec<_> = r.paths.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(paths, vec![dir.path().join("a.log")]);
        assert!(
            r.unlistable.is_empty(),
            "a missing directory is not unlistable"
        );
    }
}
