//! Change notifications (inotify through `notify`) for the directories the globs cover.
//! A missing directory is watched through its nearest existing ancestor until it appears.
//! The periodic rescan stays the backstop for anything missed (NFS, overflow).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

/// Paths that changed; `structural` when files were created, removed or renamed.
#[derive(Debug)]
pub struct FsEvent {
    pub paths: Vec<PathBuf>,
    pub structural: bool,
}

pub struct Watcher {
    inner: notify::RecommendedWatcher,
    /// Watched directory → recursive?
    watched: HashMap<PathBuf, bool>,
}

impl Watcher {
    /// `None` (with a warning) when the platform refuses: the rescan timer still works.
    pub fn new(tx: UnboundedSender<FsEvent>) -> Option<Watcher> {
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                let structural = match ev.kind {
                    EventKind::Create(_) | EventKind::Remove(_) => true,
                    EventKind::Modify(notify::event::ModifyKind::Name(_)) => true,
                    EventKind::Modify(_) => false,
                    EventKind::Access(_) => return,
                    _ => true,
                };
                let _ = tx.send(FsEvent {
                    paths: ev.paths,
                    structural,
                });
            }
            Err(_) => {
                // Overflow or watch errors: ask for a rescan.
                let _ = tx.send(FsEvent {
                    paths: Vec::new(),
                    structural: true,
                });
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(inner) => Some(Watcher {
                inner,
                watched: HashMap::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "file change notifications unavailable; relying on periodic scans");
                None
            }
        }
    }

    /// Make sure the directories of every glob are watched (called before each full scan).
    pub fn ensure(&mut self, globs: &[String]) {
        for g in globs {
            let (base, recursive) = glob_base(g);
            let target = nearest_existing(&base);
            let recursive = recursive && target == base;
            if self.watched.get(&target) == Some(&recursive) {
                continue;
            }
            if let Some(old) = self.watched.remove(&target) {
                let _ = old;
                let _ = self.inner.unwatch(&target);
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match self.inner.watch(&target, mode) {
                Ok(()) => {
                    self.watched.insert(target, recursive);
                }
                Err(e) => {
                    tracing::debug!(dir = %target.display(), error = %e, "cannot watch directory");
                }
            }
        }
    }
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The directory part of a glob before any wildcard, and whether matches can lie in
/// subdirectories of it (a wildcard in a directory component, or `**`).
pub fn glob_base(glob: &str) -> (PathBuf, bool) {
    let path = Path::new(glob);
    let comps: Vec<Component> = path.components().collect();
    let mut base = PathBuf::new();
    let mut idx = 0;
    while idx < comps.len() {
        let s = comps[idx].as_os_str().to_string_lossy();
        if has_magic(&s) {
            break;
        }
        base.push(comps[idx]);
        idx += 1;
    }
    if idx == comps.len() {
        // A literal file path: watch its directory.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return (dir, false);
    }
    // Wildcards only in the last component: the base directory is enough.
    let recursive = idx + 1 < comps.len();
    (base, recursive)
}

fn nearest_existing(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    loop {
        if cur.is_dir() {
            return cur;
        }
        if !cur.pop() {
            return PathBuf::from("/");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(
            glob_base("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), false)
        );
        assert_eq!(
            glob_base("/var/log/**/*.log"),
            (PathBuf::from("/var/log"), true)
        );
        assert_eq!(
            glob_base("/var/log/a.log"),
            (PathBuf::from("/var/log"), false)
        );
        assert_eq!(
            glob_base("/srv/*/logs/x.log"),
            (PathBuf::from("/srv"), true)
        );
    }
}
