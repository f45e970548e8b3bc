//! One znode in one allocation.
//!
//! Why a hand-made handle: a znode used to be an `Arc<Node>` of 128 bytes
//! pointing at an `Arc<str>` path and an `Arc<[u8]>` data buffer: three
//! allocations, three reference-count headers and three size-class
//! roundings, 302 bytes asked of the allocator for a 31-byte path and 100
//! bytes of data. Here a znode is one reference-counted block, sized
//! exactly: a fixed 32-byte header, the Stat fields that differ from their
//! defaults, then the path and the data.
//!
//! ```text
//! header (32 bytes, align 8)
//!   count: u32              strong references (there are no weak ones)
//!   data_tag: u32           inline data length; NULL, EXTERNAL and one
//!                           presence bit per optional field
//!   acl: *const Arc<[Acl]>  the interned ACL list (`AclRef`), thin
//!   czxid, ctime_ms: i64
//! tail (read and written unaligned)
//!   mzxid, pzxid            i64 each, only when not equal to czxid
//!   mtime_ms                i64, only when not equal to ctime_ms
//!   ephemeral_owner         i64, only when not 0
//!   version, cversion, aversion, num_children: i32 each, only when not 0
//!   external data           (pointer, length) of an Arc<[u8]>, only when EXTERNAL
//!   path length: u32, path bytes
//!   data bytes              only when neither NULL nor EXTERNAL
//! ```
//!
//! Why optional fields: most znodes of a large tree are leaves written once
//! or a few times (a leaf has no children, so pzxid is its czxid and the
//! counters of children are 0; most are persistent; most ACLs never
//! change), and the defaults are exact, so every value a client sees is
//! kept; a 100-byte key with a 34-byte path is 170 bytes (mimalloc's
//! 192-byte class) and stays in that class after setData rewrites it. An
//! accessor finds a field with one population count of the flags before it.
//!
//! Data up to `INLINE_DATA_BYTES_MAX` is copied inline; a larger value
//! stays in the `Arc<[u8]>` the transaction carried (the copy would cost as
//! much as the value, and the separate header is then negligible), so the
//! tree, the transaction and a getData reply share it. Null data is kept
//! apart from empty data (ZooKeeper tells them apart on the wire).
//!
//! A `Node` is immutable once built: a change builds a new one (the tree is
//! persistent, and readers on other cores hold older versions). Cloning a
//! handle is one atomic increment, as for an `Arc`.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

use crate::proto::codes::ephemeral_owner;
use crate::proto::{Acl, Stat};

/// The largest data copied into the node's own allocation. Above it the
/// transaction's buffer is shared (32 bytes of pointer and buffer header,
/// under 3% of such a value), and a getData reply shares it too instead of
/// copying it.
pub const INLINE_DATA_BYTES_MAX: usize = 1024;

/// An interned ACL list: the tree keeps one per distinct list, and nodes
/// point at it with one thin pointer.
pub(super) type AclRef = Arc<Arc<[Acl]>>;

/// The fields of a znode other than its path, data and ACL, as the tree
/// stores them (cversion is the create counter; see `Node::stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeFields {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    /// The number of children ever created here; the suffix of the next
    /// sequential child.
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    /// How many children the node has now.
    pub num_children: i32,
}

/// Where a new node's data comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum DataSource<'a> {
    Null,
    /// Copied (inline, or into a new buffer when large).
    Bytes(&'a [u8]),
    /// Copied inline when small, shared when large.
    Shared(&'a Arc<[u8]>),
}

impl<'a> DataSource<'a> {
    pub(super) fn of(data: &'a Option<Arc<[u8]>>) -> DataSource<'a> {
        data.as_ref().map_or(DataSource::Null, DataSource::Shared)
    }
}

/// `data_tag` bits: the inline data's length, then flags.
const INLINE_MASK: u32 = (1 << 11) - 1;
const NULL: u32 = 1 << 16;
const EXTERNAL: u32 = 1 << 17;
/// Optional fields, each present only when it differs from its default
/// (czxid for mzxid and pzxid, ctime for mtime, 0 for the rest). Their
/// bits are in tail order: the 8-byte ones first, then the 4-byte ones.
const WIDE_SHIFT: u32 = 24;
const MZXID: usize = 0;
const PZXID: usize = 1;
const MTIME: usize = 2;
const OWNER: usize = 3;
const WIDE_FIELDS: usize = 4;
const NARROW_SHIFT: u32 = 28;
const VERSION: usize = 0;
const CVERSION: usize = 1;
const AVERSION: usize = 2;
const NUM_CHILDREN: usize = 3;
const NARROW_FIELDS: usize = 4;
const FIELD_MASK: u32 = (1 << WIDE_FIELDS) - 1;
const EXTERNAL_BYTES: usize = 16;
const PATH_LENGTH_BYTES: usize = 4;

/// The fixed part of the block; the tail follows it.
#[repr(C)]
struct Header {
    count: AtomicU32,
    data_tag: u32,
    acl: *const Arc<[Acl]>,
    czxid: i64,
    ctime_ms: i64,
}

const HEADER_BYTES: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_BYTES == 32);
const _: () = assert!(INLINE_DATA_BYTES_MAX as u32 <= INLINE_MASK);
/// Bounds the count: past it a leak of handles is a bug (as `Arc` aborts).
const COUNT_MAX: u32 = i32::MAX as u32;

/// A handle on one znode (see the module essay). One pointer, to a block
/// aligned to 8, so the trie can keep it in a tagged slot (`trie::Slot`).
#[repr(transparent)]
pub struct Node {
    header: NonNull<Header>,
}

// The block is never written after `build` returns except for the atomic
// count; the ACL list and an external buffer are `Arc`s of Send + Sync data.
unsafe impl Send for Node {}
unsafe impl Sync for Node {}

/// Where the parts of a tail are, from its flags.
#[derive(Clone, Copy)]
struct Offsets {
    tag: u32,
}

impl Offsets {
    fn wide_present(self) -> u32 {
        (self.tag >> WIDE_SHIFT) & FIELD_MASK
    }

    fn narrow_present(self) -> u32 {
        (self.tag >> NARROW_SHIFT) & FIELD_MASK
    }

    /// The offset in the tail of a present 8-byte field.
    fn wide(self, field: usize) -> usize {
        8 * (self.wide_present() & ((1 << field) - 1)).count_ones() as usize
    }

    fn narrow(self, field: usize) -> usize {
        8 * self.wide_present().count_ones() as usize
            + 4 * (self.narrow_present() & ((1 << field) - 1)).count_ones() as usize
    }

    fn external(self) -> usize {
        8 * self.wide_present().count_ones() as usize + 4 * self.narrow_present().count_ones() as usize
    }

    fn path_length(self) -> usize {
        self.external() + if self.tag & EXTERNAL != 0 { EXTERNAL_BYTES } else { 0 }
    }

    fn inline_data_bytes(self) -> usize {
        if self.tag & (NULL | EXTERNAL) != 0 {
            0
        } else {
            (self.tag & INLINE_MASK) as usize
        }
    }
}

fn block_layout(tail_bytes: usize) -> Layout {
    // A path or value this large cannot arrive: frames are bounded far
    // below isize::MAX (jute.maxbuffer).
    Layout::from_size_align(HEADER_BYTES + tail_bytes, std::mem::align_of::<Header>())
        .expect("a znode's size fits a Layout")
}

impl Node {
    /// Builds a znode. `acl` is the interned list it points at.
    pub(super) fn build(path: &str, data: DataSource<'_>, acl: &AclRef, fields: &NodeFields) -> Node {
        // A large value given as bytes gets its own buffer; a small shared
        // one is copied inline.
        let owned_external;
        let (external, inline): (Option<&Arc<[u8]>>, Option<&[u8]>) = match data {
            DataSource::Null => (None, None),
            DataSource::Bytes(bytes) if bytes.len() > INLINE_DATA_BYTES_MAX => {
                owned_external = Arc::<[u8]>::from(bytes);
                (Some(&owned_external), None)
            }
            DataSource::Bytes(bytes) => (None, Some(bytes)),
            DataSource::Shared(shared) if shared.len() > INLINE_DATA_BYTES_MAX => (Some(shared), None),
            DataSource::Shared(shared) => (None, Some(&shared[..])),
        };
        let path_bytes = u32::try_from(path.len()).expect("a path is shorter than 4 GiB (frames are bounded)");
        let wide: [(i64, bool); WIDE_FIELDS] = [
            (fields.mzxid, fields.mzxid != fields.czxid),
            (fields.pzxid, fields.pzxid != fields.czxid),
            (fields.mtime_ms, fields.mtime_ms != fields.ctime_ms),
            (fields.ephemeral_owner, fields.ephemeral_owner != 0),
        ];
        let narrow: [i32; NARROW_FIELDS] = [fields.version, fields.cversion, fields.aversion, fields.num_children];
        let mut data_tag = 0;
        let mut tail_bytes = PATH_LENGTH_BYTES + path.len();
        for (index, (_, present)) in wide.iter().enumerate() {
            if *present {
                data_tag |= 1 << (WIDE_SHIFT + index as u32);
                tail_bytes += 8;
            }
        }
        for (index, value) in narrow.iter().enumerate() {
            if *value != 0 {
                data_tag |= 1 << (NARROW_SHIFT + index as u32);
                tail_bytes += 4;
            }
        }
        match (external, inline) {
            (Some(_), _) => {
                data_tag |= EXTERNAL;
                tail_bytes += EXTERNAL_BYTES;
            }
            (None, Some(bytes)) => {
                data_tag |= bytes.len() as u32;
                tail_bytes += bytes.len();
            }
            (None, None) => data_tag |= NULL,
        }
        let layout = block_layout(tail_bytes);
        // SAFETY: the layout is non-zero (at least the header). Every byte
        // written below lies inside it: the header at offset 0, then the
        // tail parts in the order `Offsets` finds them, which is the order
        // `tail_bytes` counted them. Tail writes are unaligned.
        unsafe {
            let block = std::alloc::alloc(layout);
            let Some(block) = NonNull::new(block) else {
                std::alloc::handle_alloc_error(layout);
            };
            let header = block.cast::<Header>();
            header.as_ptr().write(Header {
                count: AtomicU32::new(1),
                data_tag,
                acl: Arc::into_raw(acl.clone()),
                czxid: fields.czxid,
                ctime_ms: fields.ctime_ms,
            });
            let mut cursor = block.as_ptr().add(HEADER_BYTES);
            for (value, present) in wide {
                if present {
                    cursor.cast::<i64>().write_unaligned(value);
                    cursor = cursor.add(8);
                }
            }
            for value in narrow {
                if value != 0 {
                    cursor.cast::<i32>().write_unaligned(value);
                    cursor = cursor.add(4);
                }
            }
            if let Some(external) = external {
                let raw = Arc::into_raw(external.clone());
                cursor.cast::<usize>().write_unaligned(raw.cast::<u8>() as usize);
                cursor.add(8).cast::<usize>().write_unaligned(external.len());
                cursor = cursor.add(EXTERNAL_BYTES);
            }
            cursor.cast::<u32>().write_unaligned(path_bytes);
            cursor = cursor.add(PATH_LENGTH_BYTES);
            std::ptr::copy_nonoverlapping(path.as_ptr(), cursor, path.len());
            cursor = cursor.add(path.len());
            if let Some(bytes) = inline {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), cursor, bytes.len());
            }
            debug_assert_eq!(cursor.add(inline.map_or(0, <[u8]>::len)), block.as_ptr().add(layout.size()));
            Node { header }
        }
    }

    /// The same node with other fields (the path, data and ACL shared or
    /// copied as they are).
    pub(super) fn with_fields(&self, fields: &NodeFields) -> Node {
        self.with(fields, None, None)
    }

    /// The same node with other fields and, when given, another ACL or data.
    pub(super) fn with(&self, fields: &NodeFields, acl: Option<&AclRef>, data: Option<DataSource<'_>>) -> Node {
        let external = self.external();
        let data = data.unwrap_or(match (&external, self.data()) {
            (Some(shared), _) => DataSource::Shared(shared),
            (None, Some(bytes)) => DataSource::Bytes(bytes),
            (None, None) => DataSource::Null,
        });
        let own_acl;
        let acl = match acl {
            Some(acl) => acl,
            None => {
                own_acl = self.acl_ref();
                &own_acl
            }
        };
        Node::build(self.path(), data, acl, fields)
    }

    fn header(&self) -> &Header {
        // SAFETY: the block lives while a handle does, and the header is
        // only read after `build`.
        unsafe { self.header.as_ref() }
    }

    fn offsets(&self) -> Offsets {
        Offsets { tag: self.header().data_tag }
    }

    /// Reads `N` bytes at `offset` in the tail.
    fn tail_bytes<const N: usize>(&self, offset: usize) -> [u8; N] {
        // SAFETY: callers pass offsets `Offsets` computed from the flags
        // `build` wrote with these parts; the tail starts after the header.
        unsafe { self.header.as_ptr().cast::<u8>().add(HEADER_BYTES + offset).cast::<[u8; N]>().read_unaligned() }
    }

    fn wide_field(&self, field: usize, default: i64) -> i64 {
        let offsets = self.offsets();
        if offsets.wide_present() & (1 << field) == 0 {
            return default;
        }
        i64::from_ne_bytes(self.tail_bytes(offsets.wide(field)))
    }

    fn narrow_field(&self, field: usize) -> i32 {
        let offsets = self.offsets();
        if offsets.narrow_present() & (1 << field) == 0 {
            return 0;
        }
        i32::from_ne_bytes(self.tail_bytes(offsets.narrow(field)))
    }

    /// The total size of the tail, from its flags and lengths.
    fn tail_size(&self) -> usize {
        let offsets = self.offsets();
        let path_bytes = u32::from_ne_bytes(self.tail_bytes(offsets.path_length())) as usize;
        offsets.path_length() + PATH_LENGTH_BYTES + path_bytes + offsets.inline_data_bytes()
    }

    /// The full path: the node is its own key in the tree.
    pub fn path(&self) -> &str {
        let at = self.offsets().path_length();
        let length = u32::from_ne_bytes(self.tail_bytes(at)) as usize;
        // SAFETY: `build` copied `length` bytes of a `&str` after the length.
        unsafe {
            let start = self.header.as_ptr().cast::<u8>().add(HEADER_BYTES + at + PATH_LENGTH_BYTES);
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(start, length))
        }
    }

    /// None is null data (a client sent a null buffer), kept apart from empty.
    pub fn data(&self) -> Option<&[u8]> {
        let offsets = self.offsets();
        if offsets.tag & NULL != 0 {
            return None;
        }
        if offsets.tag & EXTERNAL != 0 {
            let (pointer, length) = self.external_parts();
            // SAFETY: the node holds a reference on that buffer.
            return Some(unsafe { std::slice::from_raw_parts(pointer, length) });
        }
        let at = offsets.path_length();
        let path_bytes = u32::from_ne_bytes(self.tail_bytes(at)) as usize;
        // SAFETY: `build` copied the inline data right after the path.
        unsafe {
            let start = self.header.as_ptr().cast::<u8>().add(HEADER_BYTES + at + PATH_LENGTH_BYTES + path_bytes);
            Some(std::slice::from_raw_parts(start, offsets.inline_data_bytes()))
        }
    }

    /// The data as a buffer a reply can keep: the shared buffer of a large
    /// value, a copy of a small one.
    pub fn data_buffer(&self) -> Option<Arc<[u8]>> {
        match self.external() {
            Some(shared) => Some(shared),
            None => self.data().map(Arc::from),
        }
    }

    /// Whether both nodes hold the same bytes of data (null equals null).
    pub(super) fn same_data(&self, other: &Node) -> bool {
        match (self.data(), other.data()) {
            (Some(mine), Some(theirs)) => {
                (mine.as_ptr() == theirs.as_ptr() && mine.len() == theirs.len()) || mine == theirs
            }
            (None, None) => true,
            _ => false,
        }
    }

    fn external_parts(&self) -> (*const u8, usize) {
        let at = self.offsets().external();
        (usize::from_ne_bytes(self.tail_bytes(at)) as *const u8, usize::from_ne_bytes(self.tail_bytes(at + 8)))
    }

    /// A new reference on the large value's buffer, if it is kept apart.
    fn external(&self) -> Option<Arc<[u8]>> {
        if self.header().data_tag & EXTERNAL == 0 {
            return None;
        }
        let (pointer, length) = self.external_parts();
        let raw: *const [u8] = std::ptr::slice_from_raw_parts(pointer, length);
        // SAFETY: the pointer came from `Arc::into_raw` of an `Arc<[u8]>` of
        // that length, and this node still holds that reference.
        unsafe {
            Arc::increment_strong_count(raw);
            Some(Arc::from_raw(raw))
        }
    }

    pub fn acl(&self) -> &Arc<[Acl]> {
        // SAFETY: the node holds a reference on its interned list.
        unsafe { &*self.header().acl }
    }

    /// A new reference on the interned list this node points at.
    pub(super) fn acl_ref(&self) -> AclRef {
        let raw = self.header().acl;
        // SAFETY: from `Arc::into_raw` of an `AclRef` this node still holds.
        unsafe {
            Arc::increment_strong_count(raw);
            Arc::from_raw(raw)
        }
    }

    pub fn czxid(&self) -> i64 {
        self.header().czxid
    }

    pub fn mzxid(&self) -> i64 {
        self.wide_field(MZXID, self.header().czxid)
    }

    pub fn pzxid(&self) -> i64 {
        self.wide_field(PZXID, self.header().czxid)
    }

    pub fn ctime_ms(&self) -> i64 {
        self.header().ctime_ms
    }

    pub fn mtime_ms(&self) -> i64 {
        self.wide_field(MTIME, self.header().ctime_ms)
    }

    pub fn version(&self) -> i32 {
        self.narrow_field(VERSION)
    }

    /// The number of children ever created here (see `stat`).
    pub fn cversion(&self) -> i32 {
        self.narrow_field(CVERSION)
    }

    pub fn aversion(&self) -> i32 {
        self.narrow_field(AVERSION)
    }

    /// How many children the node has now.
    pub fn num_children(&self) -> i32 {
        self.narrow_field(NUM_CHILDREN)
    }

    /// The raw ephemeralOwner field (session, container or TTL marker).
    pub fn ephemeral_owner(&self) -> i64 {
        self.wide_field(OWNER, 0)
    }

    /// Every stored field but path, data and ACL.
    pub fn fields(&self) -> NodeFields {
        NodeFields {
            czxid: self.czxid(),
            mzxid: self.mzxid(),
            pzxid: self.pzxid(),
            ctime_ms: self.ctime_ms(),
            mtime_ms: self.mtime_ms(),
            version: self.version(),
            cversion: self.cversion(),
            aversion: self.aversion(),
            ephemeral_owner: self.ephemeral_owner(),
            num_children: self.num_children(),
        }
    }

    pub fn stat(&self) -> Stat {
        let fields = self.fields();
        Stat {
            czxid: fields.czxid,
            mzxid: fields.mzxid,
            ctime: fields.ctime_ms,
            mtime: fields.mtime_ms,
            version: fields.version,
            // ZooKeeper stores the number of child creates and reports
            // 2 * creates - children, which counts creates and deletes.
            cversion: fields.cversion.wrapping_mul(2).wrapping_sub(fields.num_children),
            aversion: fields.aversion,
            // Container and TTL markers are not shown to clients.
            ephemeral_owner: owner_session(fields.ephemeral_owner).unwrap_or(0),
            data_length: self.data_len() as i32,
            num_children: fields.num_children,
            pzxid: fields.pzxid,
        }
    }

    pub fn data_len(&self) -> usize {
        self.data().map_or(0, <[u8]>::len)
    }

    pub fn is_container(&self) -> bool {
        self.ephemeral_owner() == ephemeral_owner::CONTAINER
    }

    pub fn ttl_ms(&self) -> Option<i64> {
        ephemeral_owner::ttl_of(self.ephemeral_owner())
    }

    /// The session that owns this node, if it is an ephemeral.
    pub fn owner_session(&self) -> Option<i64> {
        owner_session(self.ephemeral_owner())
    }

    /// Bytes of the node's own block (header and tail), as asked of the
    /// allocator; an external value's buffer is not counted.
    pub fn block_bytes(&self) -> usize {
        HEADER_BYTES + self.tail_size()
    }
}

impl Clone for Node {
    fn clone(&self) -> Node {
        // Relaxed as in `Arc::clone`: a new reference is made from an
        // existing one, so the block cannot be freed meanwhile.
        let previous = self.header().count.fetch_add(1, Ordering::Relaxed);
        if previous > COUNT_MAX {
            std::process::abort();
        }
        Node { header: self.header }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Release/Acquire as in `Arc::drop`: every use of the block by other
        // handles happens before it is freed.
        if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let layout = block_layout(self.tail_size());
        let external = self.header().data_tag & EXTERNAL != 0;
        // SAFETY: this was the last handle. The ACL reference and an
        // external buffer's reference were made by `build` with
        // `Arc::into_raw`; the block was allocated with this layout.
        unsafe {
            drop(Arc::from_raw(self.header().acl));
            if external {
                let (pointer, length) = self.external_parts();
                drop(Arc::from_raw(std::ptr::slice_from_raw_parts(pointer, length)));
            }
            std::alloc::dealloc(self.header.as_ptr().cast(), layout);
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.header == other.header
            || (self.path() == other.path()
                && self.data() == other.data()
                && self.acl() == other.acl()
                && self.fields() == other.fields())
    }
}

impl Eq for Node {}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Node")
            .field("path", &self.path())
            .field("data_bytes", &self.data().map(<[u8]>::len))
            .field("acl", self.acl())
            .field("fields", &self.fields())
            .finish()
    }
}

/// The session an ephemeralOwner field names, if it is not a container or
/// TTL marker.
fn owner_session(owner: i64) -> Option<i64> {
    (owner != 0 && owner != ephemeral_owner::CONTAINER && ephemeral_owner::ttl_of(owner).is_none()).then_some(owner)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn open() -> AclRef {
        Arc::new(Arc::from(Acl::open_unsafe()))
    }

    fn check(node: &Node, path: &str, data: Option<&[u8]>, fields: &NodeFields) {
        assert_eq!(node.path(), path);
        assert_eq!(node.data(), data);
        assert_eq!(node.data_buffer().as_deref(), data);
        assert_eq!(&node.fields(), fields);
        assert_eq!(node.data_len(), data.map_or(0, <[u8]>::len));
        assert_eq!(**node.acl(), *Acl::open_unsafe());
    }

    #[test]
    fn null_data_is_kept_apart_from_empty_data() {
        let fields = NodeFields::default();
        let null = Node::build("/a", DataSource::Null, &open(), &fields);
        let empty = Node::build("/a", DataSource::Bytes(&[]), &open(), &fields);
        check(&null, "/a", None, &fields);
        check(&empty, "/a", Some(&[]), &fields);
        assert_ne!(null, empty);
        assert!(!null.same_data(&empty));
        assert_eq!(null.stat().data_length, 0);
        // The smallest node: header, path length and path.
        assert_eq!(null.block_bytes(), HEADER_BYTES + PATH_LENGTH_BYTES + 2);
    }

    #[test]
    fn a_large_value_is_shared_not_copied() {
        let value: Arc<[u8]> = Arc::from(vec![7u8; 1 << 20]);
        let fields = NodeFields { ephemeral_owner: 0x55, version: 3, ..NodeFields::default() };
        let node = Node::build("/big", DataSource::Shared(&value), &open(), &fields);
        check(&node, "/big", Some(&value), &fields);
        assert_eq!(node.data().map(<[u8]>::as_ptr), Some(value.as_ptr()), "the transaction's buffer");
        assert!(node.block_bytes() < 128);
        assert_eq!(Arc::strong_count(&value), 2);
        let changed = node.with_fields(&NodeFields { version: 4, ..fields });
        assert!(Arc::ptr_eq(&changed.data_buffer().unwrap(), &value));
        assert!(changed.same_data(&node));
        drop((node, changed));
        assert_eq!(Arc::strong_count(&value), 1, "the nodes let go of the buffer");
        // Given as bytes, a large value gets its own buffer once.
        let copied = Node::build("/big", DataSource::Bytes(&value), &open(), &fields);
        check(&copied, "/big", Some(&value), &fields);
        // At the bound it is inline.
        let small = vec![1u8; INLINE_DATA_BYTES_MAX];
        let inline = Node::build("/s", DataSource::Shared(&Arc::from(&small[..])), &open(), &fields);
        check(&inline, "/s", Some(&small), &fields);
        assert!(inline.block_bytes() > INLINE_DATA_BYTES_MAX);
    }

    #[test]
    fn long_paths_and_handles_outlive_each_other() {
        let path = format!("/{}", "x".repeat(100_000));
        let fields = NodeFields { czxid: 1, mzxid: 9, ..NodeFields::default() };
        let node = Node::build(&path, DataSource::Bytes(b"v"), &open(), &fields);
        let copy = node.clone();
        drop(node);
        check(&copy, &path, Some(b"v"), &fields);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let copy = copy.clone();
                std::thread::spawn(move || copy.path().len())
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), path.len());
        }
    }

    fn any_data() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
            (INLINE_DATA_BYTES_MAX - 2..INLINE_DATA_BYTES_MAX + 3).prop_map(|length| Some(vec![3u8; length])),
        ]
    }

    fn any_fields() -> impl Strategy<Value = NodeFields> {
        let small = prop_oneof![Just(0i32), Just(1), any::<i32>()];
        let zxid = prop_oneof![Just(0i64), Just(5), any::<i64>()];
        (
            (zxid.clone(), zxid.clone(), zxid.clone(), zxid.clone(), zxid.clone(), zxid),
            (small.clone(), small.clone(), small.clone(), small),
        )
            .prop_map(|((czxid, mzxid, pzxid, ctime_ms, mtime_ms, ephemeral_owner), counters)| NodeFields {
                czxid,
                mzxid,
                pzxid,
                ctime_ms,
                mtime_ms,
                version: counters.0,
                cversion: counters.1,
                aversion: counters.2,
                ephemeral_owner,
                num_children: counters.3,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever fields are present or left at their default, every
        /// value reads back, and a rebuilt node with other fields keeps the
        /// path and the data.
        #[test]
        fn every_field_reads_back(
            path in "/[a-z0-9/]{0,60}",
            data in any_data(),
            fields in any_fields(),
            other in any_fields(),
            shared in any::<bool>(),
        ) {
            let buffer: Option<Arc<[u8]>> = data.as_deref().map(Arc::from);
            let source = match (&data, shared) {
                (None, _) => DataSource::Null,
                (Some(bytes), false) => DataSource::Bytes(bytes),
                (Some(_), true) => DataSource::of(&buffer),
            };
            let node = Node::build(&path, source, &open(), &fields);
            check(&node, &path, data.as_deref(), &fields);
            let rebuilt = node.with_fields(&other);
            check(&rebuilt, &path, data.as_deref(), &other);
            prop_assert!(rebuilt.same_data(&node));
            prop_assert_eq!(node.stat().mzxid, fields.mzxid);
        }
    }
}
