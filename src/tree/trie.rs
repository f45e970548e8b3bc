//! A persistent hash trie (HAMT) of znodes, keyed by their path.
//!
//! Why not `imbl::HashMap`: its inner nodes are fixed arrays of 32 entries
//! (about 1 KiB each, however few are in use), and with a million keys most
//! of them hold one or two: that alone cost 324 bytes a znode. Here a branch
//! holds a 64-bit bitmap and a vector of exactly its occupied slots, so a
//! znode costs one 8-byte slot (a tagged pointer, see `Slot`) plus its
//! share of small branches.
//!
//! The znode itself is the leaf (`Node`, which carries its path), so
//! the path is stored once, in the node, and there is no separate key.
//!
//! Children without children sets: the hash of a path (see
//! `super::path_hash`) takes its lowest `PREFIX_LEVELS` levels of bits from
//! the hash of the parent's path, so all children of one parent live in the
//! one subtree found by walking those levels with the parent's hash, and
//! listing them is a walk of that subtree, keeping the leaves whose parent is
//! that path. A parent's children then cost nothing beyond their own leaves.
//!
//! Persistence: branches are `Arc`s; a writer makes the branches on its way
//! unique with `Arc::make_mut` (copying a branch only while an older version
//! still shares it), so cloning the trie is one pointer copy and a version
//! that readers hold never changes.

use std::ptr::NonNull;
use std::sync::Arc;

use smallvec::SmallVec;

use super::Node;

/// Bits of the hash each level consumes: 64-way branches.
const BITS: u32 = 6;
const SLOT_MASK: u64 = (1 << BITS) - 1;
/// Levels whose bits come from the parent's hash (18 bits, 262,144
/// groups): a parent's children share one subtree at this depth. More
/// levels would add a chain of one-slot branches above every small family
/// (a slower lookup); fewer would mix more families in one subtree (a
/// slower getChildren).
pub(super) const PREFIX_LEVELS: u32 = 3;
pub(super) const PREFIX_MASK: u64 = (1 << (BITS * PREFIX_LEVELS)) - 1;

/// One slot of a branch: a leaf, a branch or a collision list, in one
/// tagged pointer of 8 bytes (an enum of the three would be 16: that was
/// 16 bytes a znode in the branches, copied again by every write that
/// copies a branch). The low bits of the pointer say which: every pointee
/// is aligned to 8. A leaf's tag is 0, so a leaf slot's bits are exactly a
/// `Node` (both are one pointer, `repr(transparent)`).
#[repr(transparent)]
struct Slot(NonNull<u8>);

const TAG_MASK: usize = 0b11;
const LEAF: usize = 0;
const BRANCH: usize = 1;
/// Paths whose 64-bit hashes are equal, past the last level.
const COLLISION: usize = 2;

// A slot owns one reference on what it points at, as the `Node` or `Arc`
// it replaces would; those are Send + Sync.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

/// What a slot holds, borrowed.
enum View<'a> {
    Leaf(&'a Node),
    Branch(&'a Branch),
    Collision(&'a Vec<Node>),
}

/// What a slot holds, borrowed to change it: a branch or collision list
/// shared with an older version is copied first (`Arc::make_mut`).
enum ViewMut<'a> {
    Leaf(&'a mut Node),
    Branch(&'a mut Branch),
    Collision(&'a mut Vec<Node>),
}

impl Slot {
    fn leaf(node: Node) -> Slot {
        let node = std::mem::ManuallyDrop::new(node);
        // SAFETY: a Node is one aligned pointer (`repr(transparent)`); the
        // slot takes over its reference.
        unsafe { std::mem::transmute_copy::<Node, Slot>(&node) }
    }

    fn tagged<T>(arc: Arc<T>, tag: usize) -> Slot {
        let raw = Arc::into_raw(arc) as *mut u8;
        debug_assert_eq!(raw as usize & TAG_MASK, 0);
        // SAFETY: `Arc::into_raw` is never null; the tag goes in bits that
        // an 8-aligned pointer leaves zero.
        Slot(unsafe { NonNull::new_unchecked(raw.map_addr(|address| address | tag)) })
    }

    fn branch(branch: Branch) -> Slot {
        Slot::tagged(Arc::new(branch), BRANCH)
    }

    fn collision(nodes: Vec<Node>) -> Slot {
        Slot::tagged(Arc::new(nodes), COLLISION)
    }

    fn tag(&self) -> usize {
        self.0.as_ptr() as usize & TAG_MASK
    }

    fn untagged<T>(&self) -> *const T {
        self.0.as_ptr().map_addr(|address| address & !TAG_MASK).cast::<T>()
    }

    fn view(&self) -> View<'_> {
        // SAFETY: the tag says what the pointer came from, and the slot
        // holds a reference on it while borrowed.
        unsafe {
            match self.tag() {
                LEAF => View::Leaf(&*(self as *const Slot).cast::<Node>()),
                BRANCH => View::Branch(&*self.untagged::<Branch>()),
                _ => View::Collision(&*self.untagged::<Vec<Node>>()),
            }
        }
    }

    fn view_mut(&mut self) -> ViewMut<'_> {
        match self.tag() {
            // SAFETY: as in `view`; writing a Node there keeps the tag 0.
            LEAF => ViewMut::Leaf(unsafe { &mut *(self as *mut Slot).cast::<Node>() }),
            BRANCH => ViewMut::Branch(self.make_mut::<Branch>(BRANCH)),
            _ => ViewMut::Collision(self.make_mut::<Vec<Node>>(COLLISION)),
        }
    }

    /// The slot's `Arc<T>` made unique (copied if an older version shares
    /// it), the slot pointing at the unique one.
    fn make_mut<T: Clone>(&mut self, tag: usize) -> &mut T {
        // SAFETY: the slot owns this reference; `make_mut` either keeps it
        // or drops it for a new unique one, which the slot then owns.
        unsafe {
            let mut arc = std::mem::ManuallyDrop::new(Arc::from_raw(self.untagged::<T>()));
            let unique: *mut T = Arc::make_mut(&mut arc);
            let arc = std::mem::ManuallyDrop::into_inner(arc);
            std::mem::forget(std::mem::replace(self, Slot::tagged(arc, tag)));
            &mut *unique
        }
    }

    fn into_leaf(self) -> Option<Node> {
        if self.tag() != LEAF {
            return None;
        }
        let slot = std::mem::ManuallyDrop::new(self);
        // SAFETY: a leaf slot's bits are a Node; its reference moves out.
        Some(unsafe { std::mem::transmute_copy::<Slot, Node>(&slot) })
    }

    fn is_leaf(&self) -> bool {
        self.tag() == LEAF
    }
}

impl Clone for Slot {
    fn clone(&self) -> Slot {
        match self.view() {
            View::Leaf(node) => Slot::leaf(node.clone()),
            // SAFETY: a new reference on the Arc this slot points at.
            View::Branch(_) | View::Collision(_) => unsafe {
                match self.tag() {
                    BRANCH => Arc::increment_strong_count(self.untagged::<Branch>()),
                    _ => Arc::increment_strong_count(self.untagged::<Vec<Node>>()),
                }
                Slot(self.0)
            },
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: the slot's own reference, released once.
        unsafe {
            match self.tag() {
                LEAF => drop(std::ptr::read((self as *mut Slot).cast::<Node>())),
                BRANCH => drop(Arc::from_raw(self.untagged::<Branch>())),
                _ => drop(Arc::from_raw(self.untagged::<Vec<Node>>())),
            }
        }
    }
}

/// Slots a branch holds in its own allocation. Most branches deep in the
/// trie hold one or two, and a lookup then costs one cache miss per level
/// instead of two (the branch, then its slots).
const INLINE_SLOTS: usize = 2;

#[derive(Clone, Default)]
struct Branch {
    /// Bit i is set when slot i is occupied; `slots` holds the occupied ones
    /// in order.
    bitmap: u64,
    slots: SmallVec<[Slot; INLINE_SLOTS]>,
}

impl Branch {
    fn position(&self, hash: u64, shift: u32) -> (u64, usize) {
        let bit = 1u64 << ((hash >> shift) & SLOT_MASK);
        (bit, (self.bitmap & (bit - 1)).count_ones() as usize)
    }

    fn insert_slot(&mut self, bit: u64, position: usize, slot: Slot) {
        self.bitmap |= bit;
        // Exact growth: a branch holds at most 64 slots and most hold a few,
        // so doubling would waste more than the copies cost.
        self.slots.reserve_exact(1);
        self.slots.insert(position, slot);
    }

    fn remove_slot(&mut self, bit: u64, position: usize) -> Slot {
        self.bitmap &= !bit;
        let slot = self.slots.remove(position);
        if self.slots.capacity() > self.slots.len() + 4 {
            self.slots.shrink_to_fit();
        }
        slot
    }
}

/// The trie. Cloning it is one `Arc` clone.
#[derive(Clone)]
pub(super) struct Trie {
    root: Arc<Branch>,
    len: usize,
    /// The hash of a path (`super::path_hash`; tests give a weak one to
    /// force collisions).
    hash: fn(&str) -> u64,
}

impl std::fmt::Debug for Trie {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Trie").field("len", &self.len).finish()
    }
}

impl Trie {
    pub(super) fn new(hash: fn(&str) -> u64) -> Trie {
        Trie { root: Arc::default(), len: 0, hash }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, path: &str) -> Option<&Node> {
        let hash = (self.hash)(path);
        let mut branch: &Branch = &self.root;
        let mut shift = 0;
        loop {
            let (bit, position) = branch.position(hash, shift);
            if branch.bitmap & bit == 0 {
                return None;
            }
            match branch.slots[position].view() {
                View::Leaf(node) => return (node.path() == path).then_some(node),
                View::Branch(next) => {
                    branch = next;
                    shift += BITS;
                }
                View::Collision(nodes) => return nodes.iter().find(|node| node.path() == path),
            }
        }
    }

    /// Inserts or replaces the node at its path; returns the one replaced.
    pub(super) fn insert(&mut self, node: Node) -> Option<Node> {
        let hash = (self.hash)(node.path());
        let replaced = insert_into(Arc::make_mut(&mut self.root), 0, hash, node, self.hash);
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        // A miss must not copy the branches on the way.
        self.get(path)?;
        let hash = (self.hash)(path);
        let removed = remove_from(Arc::make_mut(&mut self.root), 0, hash, path);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        Iter { stack: vec![self.root.slots.iter()], collision: [].iter() }
    }

    /// Every node whose hash has the lowest `PREFIX_LEVELS` levels of
    /// `prefix_hash` (a superset of the children of the path with that hash).
    pub(super) fn with_prefix(&self, prefix_hash: u64) -> Iter<'_> {
        let mut branch: &Branch = &self.root;
        let mut shift = 0;
        loop {
            if shift == BITS * PREFIX_LEVELS {
                return Iter { stack: vec![branch.slots.iter()], collision: [].iter() };
            }
            let (bit, position) = branch.position(prefix_hash, shift);
            if branch.bitmap & bit == 0 {
                return Iter { stack: Vec::new(), collision: [].iter() };
            }
            let slot = &branch.slots[position];
            match slot.view() {
                View::Branch(next) => {
                    branch = next;
                    shift += BITS;
                }
                // A leaf or a collision above the prefix depth is the only
                // content of this prefix.
                _ => return Iter { stack: vec![std::slice::from_ref(slot).iter()], collision: [].iter() },
            }
        }
    }
}

fn insert_into(branch: &mut Branch, shift: u32, hash: u64, node: Node, hasher: fn(&str) -> u64) -> Option<Node> {
    let (bit, position) = branch.position(hash, shift);
    if branch.bitmap & bit == 0 {
        branch.insert_slot(bit, position, Slot::leaf(node));
        return None;
    }
    let slot = &mut branch.slots[position];
    match slot.view_mut() {
        ViewMut::Leaf(existing) if existing.path() == node.path() => Some(std::mem::replace(existing, node)),
        ViewMut::Leaf(existing) => {
            let existing = existing.clone();
            let existing_hash = hasher(existing.path());
            *slot = pair(existing, existing_hash, node, hash, shift + BITS);
            None
        }
        ViewMut::Branch(next) => insert_into(next, shift + BITS, hash, node, hasher),
        ViewMut::Collision(nodes) => match nodes.iter_mut().find(|existing| existing.path() == node.path()) {
            Some(existing) => Some(std::mem::replace(existing, node)),
            None => {
                nodes.push(node);
                None
            }
        },
    }
}

/// The slot holding two leaves that met at one slot of the level above
/// `shift`: branches down to where their hashes differ, or a collision list.
fn pair(first: Node, first_hash: u64, second: Node, second_hash: u64, shift: u32) -> Slot {
    if shift >= u64::BITS {
        return Slot::collision(vec![first, second]);
    }
    let first_index = (first_hash >> shift) & SLOT_MASK;
    let second_index = (second_hash >> shift) & SLOT_MASK;
    let branch = if first_index == second_index {
        Branch {
            bitmap: 1 << first_index,
            slots: smallvec::smallvec![pair(first, first_hash, second, second_hash, shift + BITS)],
        }
    } else {
        let slots = if first_index < second_index {
            SmallVec::from_buf([Slot::leaf(first), Slot::leaf(second)])
        } else {
            SmallVec::from_buf([Slot::leaf(second), Slot::leaf(first)])
        };
        Branch { bitmap: (1 << first_index) | (1 << second_index), slots }
    };
    Slot::branch(branch)
}

/// Removes the node; a branch left with a single leaf is replaced by that
/// leaf, so the trie stays as shallow as its keys need.
fn remove_from(branch: &mut Branch, shift: u32, hash: u64, path: &str) -> Option<Node> {
    let (bit, position) = branch.position(hash, shift);
    if branch.bitmap & bit == 0 {
        return None;
    }
    match branch.slots[position].view_mut() {
        ViewMut::Leaf(existing) => {
            if existing.path() != path {
                return None;
            }
            branch.remove_slot(bit, position).into_leaf()
        }
        ViewMut::Branch(next) => {
            let removed = remove_from(next, shift + BITS, hash, path)?;
            if next.slots.is_empty() {
                branch.remove_slot(bit, position);
            } else if next.slots.len() == 1 && next.slots[0].is_leaf() {
                let only = next.slots.pop();
                if let Some(only) = only {
                    branch.slots[position] = only;
                }
            }
            Some(removed)
        }
        ViewMut::Collision(nodes) => {
            let index = nodes.iter().position(|node| node.path() == path)?;
            let removed = nodes.remove(index);
            if nodes.len() == 1 {
                if let Some(only) = nodes.pop() {
                    branch.slots[position] = Slot::leaf(only);
                }
            }
            Some(removed)
        }
    }
}

/// Leaves in trie order (no order a client may rely on).
pub(super) struct Iter<'a> {
    stack: Vec<std::slice::Iter<'a, Slot>>,
    collision: std::slice::Iter<'a, Node>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Node;

    fn next(&mut self) -> Option<&'a Node> {
        loop {
            if let Some(node) = self.collision.next() {
                return Some(node);
            }
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(slot) => match slot.view() {
                    View::Leaf(node) => return Some(node),
                    View::Branch(branch) => self.stack.push(branch.slots.iter()),
                    View::Collision(nodes) => self.collision = nodes.iter(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::tree::node::{DataSource, NodeFields};

    fn node(path: &str, version: i32) -> Node {
        let acl = Arc::new(Arc::from(Vec::new()));
        Node::build(path, DataSource::Null, &acl, &NodeFields { version, ..NodeFields::default() })
    }

    /// Few distinct hashes, sharing their low bits: deep branches and
    /// collision lists.
    fn weak_hash(path: &str) -> u64 {
        let sum: u64 = path.bytes().map(u64::from).sum();
        (sum % 5) << 58 | (sum % 3)
    }

    fn full_hash(path: &str) -> u64 {
        super::super::path_hash(path)
    }

    fn check(trie: &Trie, model: &BTreeMap<String, i32>) {
        assert_eq!(trie.len(), model.len());
        for (path, version) in model {
            assert_eq!(trie.get(path).map(|node| node.version()), Some(*version), "{path}");
        }
        let mut seen: Vec<String> = trie.iter().map(|node| node.path().to_string()).collect();
        seen.sort();
        assert_eq!(seen, model.keys().cloned().collect::<Vec<_>>());
    }

    fn run(hash: fn(&str) -> u64, ops: &[(bool, u8, i32)]) {
        let mut trie = Trie::new(hash);
        let mut model = BTreeMap::new();
        let mut versions = Vec::new();
        for (step, (insert, key, version)) in ops.iter().enumerate() {
            let path = format!("/k{key}");
            if *insert {
                let replaced = trie.insert(node(&path, *version)).map(|node| node.version());
                assert_eq!(replaced, model.insert(path, *version));
            } else {
                let removed = trie.remove(&path).map(|node| node.version());
                assert_eq!(removed, model.remove(&path));
            }
            assert!(trie.get("/absent").is_none());
            if step % 16 == 0 {
                versions.push((trie.clone(), model.clone()));
            }
        }
        check(&trie, &model);
        for (version, version_model) in &versions {
            check(version, version_model);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn trie_matches_a_map_with_collisions(ops in proptest::collection::vec((any::<bool>(), 0u8..60, any::<i32>()), 1..300)) {
            run(weak_hash, &ops);
        }

        #[test]
        fn trie_matches_a_map(ops in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<i32>()), 1..300)) {
            run(full_hash, &ops);
        }
    }
}
