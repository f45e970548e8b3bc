//! Watches, kept per shard for the connections that shard owns.
//!
//! A watch belongs to a connection (as in ZooKeeper, where the watcher is
//! the ServerCnxn): it dies with the connection and a reconnecting client
//! re-registers it with setWatches. Because a connection never leaves its
//! core, each shard matches the broadcast core's triggers against its own
//! table, with no lock and no cross-core traffic per watch.
//!
//! The semantics are ZooKeeper's WatchManager: two tables, data (getData,
//! exists, persistent) and child (getChildren, persistent); a standard watch
//! fires once and is removed; a persistent watch stays; a recursive watch sits
//! in the data table and fires for the node and every descendant, but never
//! for NodeChildrenChanged. A connection gets at most one event per trigger,
//! and a delete's NodeDeleted is not sent twice to a connection that watched
//! the node in both tables.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use crate::proto::codes::{event, watcher_type};
use crate::tree::{Path, Trigger};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchMode {
    Standard,
    Persistent,
    PersistentRecursive,
}

impl WatchMode {
    fn is_persistent(self) -> bool {
        self != WatchMode::Standard
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Data,
    Child,
}

/// A watch that fired: the connection and the event to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired<C> {
    pub connection: C,
    pub event_type: i32,
    pub path: Path,
}

#[derive(Debug)]
pub struct WatchTable<C> {
    data: HashMap<Path, HashMap<C, WatchMode>>,
    child: HashMap<Path, HashMap<C, WatchMode>>,
    /// Every (table, path) a connection watches, to drop them when it closes.
    by_connection: HashMap<C, HashSet<(Table, Path)>>,
    recursive_watch_count: usize,
}

impl<C> Default for WatchTable<C> {
    fn default() -> Self {
        WatchTable {
            data: HashMap::new(),
            child: HashMap::new(),
            by_connection: HashMap::new(),
            recursive_watch_count: 0,
        }
    }
}

impl<C: Copy + Eq + Hash> WatchTable<C> {
    pub fn new() -> Self {
        Self::default()
    }

    fn table_mut(&mut self, table: Table) -> &mut HashMap<Path, HashMap<C, WatchMode>> {
        match table {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }

    fn table(&self, table: Table) -> &HashMap<Path, HashMap<C, WatchMode>> {
        match table {
            Table::Data => &self.data,
            Table::Child => &self.child,
        }
    }

    /// Adds a watch. A standard watch never downgrades a persistent one on
    /// the same path.
    pub fn add(&mut self, table: Table, path: &str, connection: C, mode: WatchMode) {
        let path: Path = Arc::from(path);
        let watchers = self.table_mut(table).entry(path.clone()).or_default();
        let previous = watchers.get(&connection).copied();
        let mode = match previous {
            Some(existing) if existing.is_persistent() && mode == WatchMode::Standard => existing,
            _ => mode,
        };
        watchers.insert(connection, mode);
        if previous != Some(WatchMode::PersistentRecursive) && mode == WatchMode::PersistentRecursive {
            self.recursive_watch_count += 1;
        } else if previous == Some(WatchMode::PersistentRecursive) && mode != WatchMode::PersistentRecursive {
            self.recursive_watch_count -= 1;
        }
        self.by_connection.entry(connection).or_default().insert((table, path));
    }

    /// addWatch: persistent goes in both tables, recursive in data only.
    pub fn add_persistent(&mut self, path: &str, connection: C, recursive: bool) {
        if recursive {
            self.add(Table::Data, path, connection, WatchMode::PersistentRecursive);
        } else {
            self.add(Table::Data, path, connection, WatchMode::Persistent);
            self.add(Table::Child, path, connection, WatchMode::Persistent);
        }
    }

    fn remove_entry(&mut self, table: Table, path: &Path, connection: C) -> bool {
        let map = self.table_mut(table);
        let Some(watchers) = map.get_mut(path) else {
            return false;
        };
        let Some(mode) = watchers.remove(&connection) else {
            return false;
        };
        if watchers.is_empty() {
            map.remove(path);
        }
        if mode == WatchMode::PersistentRecursive {
            self.recursive_watch_count -= 1;
        }
        if let Some(paths) = self.by_connection.get_mut(&connection) {
            paths.remove(&(table, path.clone()));
            if paths.is_empty() {
                self.by_connection.remove(&connection);
            }
        }
        true
    }

    /// Drops every watch of a closed connection.
    pub fn remove_connection(&mut self, connection: C) {
        if let Some(paths) = self.by_connection.remove(&connection) {
            for (table, path) in paths {
                let map = self.table_mut(table);
                let mut removed_recursive = false;
                if let Some(watchers) = map.get_mut(&path) {
                    removed_recursive = watchers.remove(&connection) == Some(WatchMode::PersistentRecursive);
                    if watchers.is_empty() {
                        map.remove(&path);
                    }
                }
                if removed_recursive {
                    self.recursive_watch_count -= 1;
                }
            }
        }
    }

    /// The (table, mode) pairs that a watcher type of checkWatches and
    /// removeWatches selects. As in ZooKeeper, Children and Data name the
    /// tables whatever the mode, so a persistent watch is both; a recursive
    /// watch (data table only) also answers to Children.
    fn selects(kind: i32, table: Table, mode: WatchMode) -> bool {
        match kind {
            watcher_type::CHILDREN => table == Table::Child || mode == WatchMode::PersistentRecursive,
            watcher_type::DATA => table == Table::Data,
            watcher_type::ANY => true,
            watcher_type::PERSISTENT => mode == WatchMode::Persistent,
            watcher_type::PERSISTENT_RECURSIVE => mode == WatchMode::PersistentRecursive,
            _ => false,
        }
    }

    /// checkWatches: whether the connection has a watch of this type here.
    pub fn contains(&self, path: &str, connection: C, kind: i32) -> bool {
        [Table::Data, Table::Child].into_iter().any(|table| {
            self.table(table)
                .get(path)
                .and_then(|watchers| watchers.get(&connection))
                .is_some_and(|mode| Self::selects(kind, table, *mode))
        })
    }

    /// removeWatches: removes the selected watches; false if there were none.
    pub fn remove(&mut self, path: &str, connection: C, kind: i32) -> bool {
        let path: Path = Arc::from(path);
        let mut removed = false;
        for table in [Table::Data, Table::Child] {
            let selected = self
                .table(table)
                .get(&path)
                .and_then(|watchers| watchers.get(&connection))
                .is_some_and(|mode| Self::selects(kind, table, *mode));
            if selected {
                removed |= self.remove_entry(table, &path, connection);
            }
        }
        removed
    }

    /// Fires the watches a change triggers, appending one event per
    /// connection to `fired`.
    pub fn trigger(&mut self, trigger: &Trigger, fired: &mut Vec<Fired<C>>) {
        match trigger {
            Trigger::Created(path) => {
                self.fire(Table::Data, path, event::NODE_CREATED, &HashSet::new(), fired);
            }
            Trigger::DataChanged(path) => {
                self.fire(Table::Data, path, event::NODE_DATA_CHANGED, &HashSet::new(), fired);
            }
            Trigger::Deleted(path) => {
                let start = fired.len();
                self.fire(Table::Data, path, event::NODE_DELETED, &HashSet::new(), fired);
                let already: HashSet<C> = fired[start..].iter().map(|fired| fired.connection).collect();
                self.fire(Table::Child, path, event::NODE_DELETED, &already, fired);
            }
            Trigger::ChildrenChanged(path) => {
                self.fire(Table::Child, path, event::NODE_CHILDREN_CHANGED, &HashSet::new(), fired);
            }
        }
    }

    fn fire(&mut self, table: Table, path: &Path, event_type: i32, suppress: &HashSet<C>, fired: &mut Vec<Fired<C>>) {
        let mut notified: HashSet<C> = HashSet::new();
        let mut one_shot: Vec<(Path, C)> = Vec::new();
        // The node itself, then (only if any recursive watch exists) its ancestors.
        let mut current: Option<&str> = Some(path);
        let mut at_parent = false;
        while let Some(watched) = current {
            if let Some(watchers) = self.table(table).get(watched) {
                for (connection, mode) in watchers {
                    if *mode == WatchMode::PersistentRecursive {
                        if event_type != event::NODE_CHILDREN_CHANGED {
                            notified.insert(*connection);
                        }
                    } else if !at_parent {
                        notified.insert(*connection);
                        if *mode == WatchMode::Standard {
                            one_shot.push((Arc::from(watched), *connection));
                        }
                    }
                }
            }
            if self.recursive_watch_count == 0 {
                break;
            }
            at_parent = true;
            current = crate::tree::split(watched).map(|(parent, _)| parent);
        }
        for (watched, connection) in one_shot {
            self.remove_entry(table, &watched, connection);
        }
        for connection in notified {
            if !suppress.contains(&connection) {
                fired.push(Fired { connection, event_type, path: path.clone() });
            }
        }
    }

    /// Total watches, as wchs counts them.
    pub fn watch_count(&self) -> usize {
        self.data.values().chain(self.child.values()).map(|watchers| watchers.len()).sum()
    }

    pub fn watched_path_count(&self) -> usize {
        let mut paths: HashSet<&Path> = self.data.keys().collect();
        paths.extend(self.child.keys());
        paths.len()
    }

    pub fn connection_count(&self) -> usize {
        self.by_connection.len()
    }

    /// The data watch table, path by path, as ZooKeeper's wchs, wchc and
    /// wchp report it (its child watches are not listed there).
    pub fn data_watches(&self) -> impl Iterator<Item = (&Path, impl Iterator<Item = C> + '_)> + '_ {
        self.data.iter().map(|(path, watchers)| (path, watchers.keys().copied()))
    }

    /// The paths each connection watches (wchc).
    pub fn by_connection(&self) -> impl Iterator<Item = (C, Vec<Path>)> + '_ {
        self.by_connection.iter().map(|(connection, entries)| {
            let mut paths: Vec<Path> = entries.iter().map(|(_, path)| path.clone()).collect();
            paths.sort();
            paths.dedup();
            (*connection, paths)
        })
    }

    /// The connections watching each path (wchp).
    pub fn by_path(&self) -> Vec<(Path, Vec<C>)> {
        let mut merged: HashMap<Path, HashSet<C>> = HashMap::new();
        for (path, watchers) in self.data.iter().chain(self.child.iter()) {
            merged.entry(path.clone()).or_default().extend(watchers.keys().copied());
        }
        merged.into_iter().map(|(path, connections)| (path, connections.into_iter().collect())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(value: &str) -> Path {
        Arc::from(value)
    }

    fn fire(table: &mut WatchTable<u32>, trigger: Trigger) -> Vec<(u32, i32)> {
        let mut fired = Vec::new();
        table.trigger(&trigger, &mut fired);
        let mut events: Vec<(u32, i32)> = fired.iter().map(|f| (f.connection, f.event_type)).collect();
        events.sort();
        events
    }

    #[test]
    fn standard_watches_fire_once() {
        let mut table = WatchTable::new();
        table.add(Table::Data, "/a", 1, WatchMode::Standard);
        table.add(Table::Data, "/a", 1, WatchMode::Standard);
        assert_eq!(fire(&mut table, Trigger::DataChanged(path("/a"))), vec![(1, event::NODE_DATA_CHANGED)]);
        assert_eq!(fire(&mut table, Trigger::DataChanged(path("/a"))), vec![]);
        assert_eq!(table.watch_count(), 0);
        assert_eq!(table.connection_count(), 0);
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_connection() {
        let mut table = WatchTable::new();
        table.add(Table::Data, "/a", 1, WatchMode::Standard);
        table.add(Table::Child, "/a", 1, WatchMode::Standard);
        table.add(Table::Child, "/a", 2, WatchMode::Standard);
        table.add(Table::Child, "/", 3, WatchMode::Standard);
        assert_eq!(
            fire(&mut table, Trigger::Deleted(path("/a"))),
            vec![(1, event::NODE_DELETED), (2, event::NODE_DELETED)]
        );
        assert_eq!(fire(&mut table, Trigger::ChildrenChanged(path("/"))), vec![(3, event::NODE_CHILDREN_CHANGED)]);
        assert_eq!(table.watch_count(), 0);
    }

    #[test]
    fn persistent_watches_stay_and_recursive_skip_children_changed() {
        let mut table = WatchTable::new();
        table.add_persistent("/a", 1, false);
        table.add_persistent("/a", 2, true);
        for _ in 0..2 {
            assert_eq!(
                fire(&mut table, Trigger::DataChanged(path("/a"))),
                vec![(1, event::NODE_DATA_CHANGED), (2, event::NODE_DATA_CHANGED)]
            );
        }
        assert_eq!(fire(&mut table, Trigger::ChildrenChanged(path("/a"))), vec![(1, event::NODE_CHILDREN_CHANGED)]);
        assert_eq!(fire(&mut table, Trigger::Created(path("/a/b/c"))), vec![(2, event::NODE_CREATED)]);
        assert_eq!(fire(&mut table, Trigger::Created(path("/ab"))), vec![]);
        assert!(table.contains("/a", 2, watcher_type::PERSISTENT_RECURSIVE));
        assert!(table.contains("/a", 2, watcher_type::DATA));
        assert!(table.contains("/a", 2, watcher_type::CHILDREN));
        assert!(!table.contains("/a", 2, watcher_type::PERSISTENT));
        assert!(table.remove("/a", 2, watcher_type::ANY));
        assert_eq!(fire(&mut table, Trigger::Created(path("/a/x"))), vec![]);
    }

    #[test]
    fn remove_by_type_and_connection() {
        let mut table = WatchTable::new();
        table.add(Table::Data, "/a", 1, WatchMode::Standard);
        table.add(Table::Child, "/a", 1, WatchMode::Standard);
        assert!(!table.remove("/a", 1, watcher_type::PERSISTENT));
        assert!(table.remove("/a", 1, watcher_type::CHILDREN));
        assert!(!table.remove("/a", 1, watcher_type::CHILDREN));
        assert!(!table.contains("/a", 1, watcher_type::CHILDREN));
        assert!(table.contains("/a", 1, watcher_type::DATA));
        table.add_persistent("/b", 1, true);
        table.remove_connection(1);
        assert_eq!(table.watch_count(), 0);
        assert_eq!(fire(&mut table, Trigger::Created(path("/b/c"))), vec![]);
    }
}
