//! One znode in one allocation.
//!
//! Why a hand-made handle: a znode used to be an `Arc<Node>` of 128 bytes
//! pointing at an `Arc<str>` path and an `Arc<[u8]>` data buffer: three
//! allocations, three reference-count headers and three size-class
//! roundings, 302 bytes asked of the allocator for a 31-byte path and 100
//! bytes of data. Here a znode is one reference-counted block: a fixed
//! 80-byte header (the count, the ACL reference, the Stat fields and two
//! lengths) followed by the variable part, sized exactly:
//!
//! ```text
//! header (80 bytes, align 8)
//!   count: usize            strong references (there are no weak ones)
//!   acl: *const Arc<[Acl]>  an interned ACL list (`AclRef`), thin
//!   czxid mzxid pzxid ctime_ms mtime_ms: i64
//!   version cversion aversion num_children: i32
//!   path_bytes: u32
//!   data_tag: u32           OWNER | NULL | EXTERNAL flags, inline length
//! tail
//!   ephemeral_owner: i64    only when OWNER (most znodes are persistent)
//!   external data: (pointer, length) of an Arc<[u8]>, only when EXTERNAL
//!   path bytes
//!   data bytes              only when neither NULL nor EXTERNAL
//! ```
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
use std::sync::atomic::{fence, AtomicUsize, Ordering};
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

const OWNER: u32 = 1 << 31;
const NULL: u32 = 1 << 30;
const EXTERNAL: u32 = 1 << 29;
const INLINE_MASK: u32 = EXTERNAL - 1;
const OWNER_BYTES: usize = 8;
const EXTERNAL_BYTES: usize = 16;

#[repr(C)]
struct Header {
    count: AtomicUsize,
    acl: *const Arc<[Acl]>,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime_ms: i64,
    mtime_ms: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    num_children: i32,
    path_bytes: u32,
    data_tag: u32,
}

const HEADER_BYTES: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_BYTES == 80);
const _: () = assert!(INLINE_DATA_BYTES_MAX as u32 <= INLINE_MASK);
/// Bounds the count as `Arc` does: past it a leak of handles is a bug.
const COUNT_MAX: usize = isize::MAX as usize;

/// A handle on one znode (see the module essay).
pub struct Node {
    header: NonNull<Header>,
}

// The block is never written after `build` returns except for the atomic
// count; the ACL list and an external buffer are `Arc`s of Send + Sync data.
unsafe impl Send for Node {}
unsafe impl Sync for Node {}

impl Header {
    fn tail_bytes(&self) -> usize {
        let mut bytes = self.path_bytes as usize;
        if self.data_tag & OWNER != 0 {
            bytes += OWNER_BYTES;
        }
        if self.data_tag & EXTERNAL != 0 {
            bytes += EXTERNAL_BYTES;
        } else if self.data_tag & NULL == 0 {
            bytes += (self.data_tag & INLINE_MASK) as usize;
        }
        bytes
    }

    fn layout(&self) -> Layout {
        block_layout(self.tail_bytes())
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
        let mut data_tag = 0;
        let mut tail_bytes = path.len();
        if fields.ephemeral_owner != 0 {
            data_tag |= OWNER;
            tail_bytes += OWNER_BYTES;
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
        // tail parts in the order `Header::tail_bytes` counts them.
        unsafe {
            let block = std::alloc::alloc(layout);
            let Some(block) = NonNull::new(block) else {
                std::alloc::handle_alloc_error(layout);
            };
            let header = block.cast::<Header>();
            header.as_ptr().write(Header {
                count: AtomicUsize::new(1),
                acl: Arc::into_raw(acl.clone()),
                czxid: fields.czxid,
                mzxid: fields.mzxid,
                pzxid: fields.pzxid,
                ctime_ms: fields.ctime_ms,
                mtime_ms: fields.mtime_ms,
                version: fields.version,
                cversion: fields.cversion,
                aversion: fields.aversion,
                num_children: fields.num_children,
                path_bytes,
                data_tag,
            });
            let mut cursor = block.as_ptr().add(HEADER_BYTES);
            if data_tag & OWNER != 0 {
                cursor.cast::<i64>().write_unaligned(fields.ephemeral_owner);
                cursor = cursor.add(OWNER_BYTES);
            }
            if let Some(external) = external {
                let raw = Arc::into_raw(external.clone());
                cursor.cast::<usize>().write_unaligned(raw.cast::<u8>() as usize);
                cursor.add(8).cast::<usize>().write_unaligned(external.len());
                cursor = cursor.add(EXTERNAL_BYTES);
            }
            std::ptr::copy_nonoverlapping(path.as_ptr(), cursor, path.len());
            cursor = cursor.add(path.len());
            if let Some(bytes) = inline {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), cursor, bytes.len());
            }
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

    fn tail(&self) -> *const u8 {
        // SAFETY: the tail starts right after the header, inside the block.
        unsafe { self.header.as_ptr().cast::<u8>().add(HEADER_BYTES) }
    }

    fn path_offset(&self) -> usize {
        let tag = self.header().data_tag;
        (if tag & OWNER != 0 { OWNER_BYTES } else { 0 }) + (if tag & EXTERNAL != 0 { EXTERNAL_BYTES } else { 0 })
    }

    /// The full path: the node is its own key in the tree.
    pub fn path(&self) -> &str {
        // SAFETY: `build` copied `path_bytes` bytes of a `&str` here.
        unsafe {
            let bytes = std::slice::from_raw_parts(
                self.tail().add(self.path_offset()),
                self.header().path_bytes as usize,
            );
            std::str::from_utf8_unchecked(bytes)
        }
    }

    /// None is null data (a client sent a null buffer), kept apart from empty.
    pub fn data(&self) -> Option<&[u8]> {
        let header = self.header();
        let tag = header.data_tag;
        if tag & NULL != 0 {
            return None;
        }
        if tag & EXTERNAL != 0 {
            let (pointer, length) = self.external_parts();
            // SAFETY: the node holds a reference on that buffer.
            return Some(unsafe { std::slice::from_raw_parts(pointer, length) });
        }
        // SAFETY: `build` copied the inline data after the path.
        unsafe {
            let start = self.tail().add(self.path_offset() + header.path_bytes as usize);
            Some(std::slice::from_raw_parts(start, (tag & INLINE_MASK) as usize))
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
        let offset = if self.header().data_tag & OWNER != 0 { OWNER_BYTES } else { 0 };
        // SAFETY: `build` wrote the pointer and length there.
        unsafe {
            let cursor = self.tail().add(offset);
            (cursor.cast::<usize>().read_unaligned() as *const u8, cursor.add(8).cast::<usize>().read_unaligned())
        }
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
        self.header().mzxid
    }

    pub fn pzxid(&self) -> i64 {
        self.header().pzxid
    }

    pub fn ctime_ms(&self) -> i64 {
        self.header().ctime_ms
    }

    pub fn mtime_ms(&self) -> i64 {
        self.header().mtime_ms
    }

    pub fn version(&self) -> i32 {
        self.header().version
    }

    /// The number of children ever created here (see `stat`).
    pub fn cversion(&self) -> i32 {
        self.header().cversion
    }

    pub fn aversion(&self) -> i32 {
        self.header().aversion
    }

    /// How many children the node has now.
    pub fn num_children(&self) -> i32 {
        self.header().num_children
    }

    /// The raw ephemeralOwner field (session, container or TTL marker).
    pub fn ephemeral_owner(&self) -> i64 {
        if self.header().data_tag & OWNER == 0 {
            return 0;
        }
        // SAFETY: `build` wrote the owner first in the tail.
        unsafe { self.tail().cast::<i64>().read_unaligned() }
    }

    /// Every stored field but path, data and ACL.
    pub fn fields(&self) -> NodeFields {
        let header = self.header();
        NodeFields {
            czxid: header.czxid,
            mzxid: header.mzxid,
            pzxid: header.pzxid,
            ctime_ms: header.ctime_ms,
            mtime_ms: header.mtime_ms,
            version: header.version,
            cversion: header.cversion,
            aversion: header.aversion,
            ephemeral_owner: self.ephemeral_owner(),
            num_children: header.num_children,
        }
    }

    pub fn stat(&self) -> Stat {
        let header = self.header();
        Stat {
            czxid: header.czxid,
            mzxid: header.mzxid,
            ctime: header.ctime_ms,
            mtime: header.mtime_ms,
            version: header.version,
            // ZooKeeper stores the number of child creates and reports
            // 2 * creates - children, which counts creates and deletes.
            cversion: header.cversion.wrapping_mul(2).wrapping_sub(header.num_children),
            aversion: header.aversion,
            // Container and TTL markers are not shown to clients.
            ephemeral_owner: self.owner_session().unwrap_or(0),
            data_length: self.data_len() as i32,
            num_children: header.num_children,
            pzxid: header.pzxid,
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
        let owner = self.ephemeral_owner();
        (owner != 0 && !self.is_container() && self.ttl_ms().is_none()).then_some(owner)
    }

    /// Bytes of the node's own block (header and tail), as asked of the
    /// allocator; an external value's buffer is not counted.
    pub fn block_bytes(&self) -> usize {
        self.header().layout().size()
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
        let layout = self.header().layout();
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
