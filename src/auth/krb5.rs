//! The server's Kerberos acceptor over the system's GSS-API (MIT krb5's
//! `libgssapi_krb5.so.2`): the one part of [`crate::auth`] that does IO. It
//! reads the keytab (once, at start, as ZooKeeper's JAAS login does) and
//! runs `gss_accept_sec_context`, `gss_wrap` and `gss_unwrap` for
//! [`super::gssapi::GssapiServer`], which decides everything else.
//!
//! The library is loaded at run time, the first time a JAAS section names
//! `Krb5LoginModule`, not linked at build time: building zoocore then needs
//! no Kerberos headers, no libclang for a binding generator and no
//! `-dev` package, so `cargo run` works on a machine with only a Rust
//! toolchain, and a server without Kerberos never touches the library. The
//! runtime library is on nearly every Linux system already (Debian's
//! `libgssapi-krb5-2`: git, curl and ssh depend on it); when it is missing,
//! a Kerberos login is refused at start, naming the package. The GSS-API C
//! interface (RFC 2744) is small and stable, so the few calls used here are
//! declared by hand.
//!
//! The calls run on the connection's shard, as the DIGEST-MD5 exchange
//! does: accepting a Kerberos ticket needs no KDC round trip (a decryption
//! with the service key and a replay-cache entry), and it is paid once per
//! connection. ZooKeeper runs the same work on its IO worker threads.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::OnceLock;

use thiserror::Error;

use crate::auth::gssapi::{AcceptContext, KerberosLogin};

/// The shared object loaded, by its ABI name.
pub const LIBRARY: &str = "libgssapi_krb5.so.2";

/// Why the server's Kerberos credential cannot be had: a start error.
#[derive(Debug, Error)]
pub enum AcceptorError {
    #[error("cannot load {LIBRARY} (MIT Kerberos's GSS-API; Debian: libgssapi-krb5-2): {0}")]
    Library(String),
    #[error("keyTab {}: {error}", path.display())]
    KeyTab { path: PathBuf, error: std::io::Error },
    #[error("principal {principal:?}: {message}")]
    Principal { principal: String, message: String },
    #[error("principal {principal:?} has no usable key in keyTab {}: {message}", key_tab.display())]
    Credential { principal: String, key_tab: PathBuf, message: String },
    #[error("the default realm of krb5.conf (KRB5_CONFIG) cannot be read: {0}")]
    DefaultRealm(String),
}

// RFC 2744's C types, as MIT's gssapi.h lays them out on Linux.
type Minor = u32;
type Major = u32;
type NameHandle = *mut c_void;
type ContextHandle = *mut c_void;
type CredentialHandle = *mut c_void;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

impl Buffer {
    fn empty() -> Buffer {
        Buffer { length: 0, value: ptr::null_mut() }
    }

    /// A descriptor of `bytes`, which the library only reads.
    fn of(bytes: &[u8]) -> Buffer {
        Buffer { length: bytes.len(), value: bytes.as_ptr() as *mut c_void }
    }
}

#[repr(C)]
struct OidDesc {
    length: u32,
    elements: *mut c_void,
}

#[repr(C)]
struct OidSetDesc {
    count: usize,
    elements: *mut OidDesc,
}

const CONTINUE_NEEDED: Major = 1;
/// GSS_ERROR(): the calling and routine error fields.
const ERROR_MASK: Major = 0xffff_0000;
const CREDENTIAL_ACCEPT: i32 = 2;
const INDEFINITE: u32 = u32::MAX;
const STATUS_GSS_CODE: i32 = 1;
const STATUS_MECH_CODE: i32 = 2;
/// Messages one status expands to at most (a bound on a library loop).
const STATUS_MESSAGES_MAX: usize = 8;

/// 1.2.840.113554.1.2.2, the Kerberos 5 mechanism.
const MECH_KRB5: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";
/// 1.2.840.113554.1.2.2.1, a Kerberos principal name.
const NT_KRB5_PRINCIPAL: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

fn oid(bytes: &'static [u8]) -> OidDesc {
    OidDesc { length: bytes.len() as u32, elements: bytes.as_ptr() as *mut c_void }
}

/// The library's entry points, looked up once.
struct Gss {
    import_name: unsafe extern "C" fn(*mut Minor, *mut Buffer, *mut OidDesc, *mut NameHandle) -> Major,
    canonicalize_name: unsafe extern "C" fn(*mut Minor, NameHandle, *mut OidDesc, *mut NameHandle) -> Major,
    display_name: unsafe extern "C" fn(*mut Minor, NameHandle, *mut Buffer, *mut *mut OidDesc) -> Major,
    release_name: unsafe extern "C" fn(*mut Minor, *mut NameHandle) -> Major,
    release_buffer: unsafe extern "C" fn(*mut Minor, *mut Buffer) -> Major,
    create_empty_oid_set: unsafe extern "C" fn(*mut Minor, *mut *mut OidSetDesc) -> Major,
    add_oid_set_member: unsafe extern "C" fn(*mut Minor, *mut OidDesc, *mut *mut OidSetDesc) -> Major,
    release_oid_set: unsafe extern "C" fn(*mut Minor, *mut *mut OidSetDesc) -> Major,
    #[allow(clippy::type_complexity)]
    acquire_cred: unsafe extern "C" fn(
        *mut Minor,
        NameHandle,
        u32,
        *mut OidSetDesc,
        i32,
        *mut CredentialHandle,
        *mut *mut OidSetDesc,
        *mut u32,
    ) -> Major,
    release_cred: unsafe extern "C" fn(*mut Minor, *mut CredentialHandle) -> Major,
    #[allow(clippy::type_complexity)]
    accept_sec_context: unsafe extern "C" fn(
        *mut Minor,
        *mut ContextHandle,
        CredentialHandle,
        *mut Buffer,
        *mut c_void,
        *mut NameHandle,
        *mut *mut OidDesc,
        *mut Buffer,
        *mut u32,
        *mut u32,
        *mut CredentialHandle,
    ) -> Major,
    delete_sec_context: unsafe extern "C" fn(*mut Minor, *mut ContextHandle, *mut Buffer) -> Major,
    wrap: unsafe extern "C" fn(*mut Minor, ContextHandle, i32, u32, *mut Buffer, *mut i32, *mut Buffer) -> Major,
    unwrap: unsafe extern "C" fn(*mut Minor, ContextHandle, *mut Buffer, *mut Buffer, *mut i32, *mut u32) -> Major,
    display_status: unsafe extern "C" fn(*mut Minor, u32, i32, *mut OidDesc, *mut u32, *mut Buffer) -> Major,
}

/// The loaded library, for the life of the process (its functions are
/// called from every shard).
fn gss() -> Result<&'static Gss, AcceptorError> {
    static LOADED: OnceLock<Result<Gss, String>> = OnceLock::new();
    LOADED.get_or_init(load).as_ref().map_err(|error| AcceptorError::Library(error.clone()))
}

fn load() -> Result<Gss, String> {
    // SAFETY: loading MIT's GSS-API runs its initialisers, which only set
    // up the library's own state.
    let library = unsafe { libloading::Library::new(LIBRARY) }.map_err(|error| error.to_string())?;
    // The library stays loaded for the process's life: the function
    // pointers below must outlive every call.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: each symbol is RFC 2744's function of that name, and
            // the field it goes to declares its C signature.
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|error| format!("{}: {error}", $name))?
        };
    }
    Ok(Gss {
        import_name: symbol!("gss_import_name"),
        canonicalize_name: symbol!("gss_canonicalize_name"),
        display_name: symbol!("gss_display_name"),
        release_name: symbol!("gss_release_name"),
        release_buffer: symbol!("gss_release_buffer"),
        create_empty_oid_set: symbol!("gss_create_empty_oid_set"),
        add_oid_set_member: symbol!("gss_add_oid_set_member"),
        release_oid_set: symbol!("gss_release_oid_set"),
        acquire_cred: symbol!("gss_acquire_cred"),
        release_cred: symbol!("gss_release_cred"),
        accept_sec_context: symbol!("gss_accept_sec_context"),
        delete_sec_context: symbol!("gss_delete_sec_context"),
        wrap: symbol!("gss_wrap"),
        unwrap: symbol!("gss_unwrap"),
        display_status: symbol!("gss_display_status"),
    })
}

impl Gss {
    /// The library's own words for a failed call: its GSS status, then
    /// the mechanism's (Kerberos's) status.
    fn describe(&self, major: Major, minor: Minor) -> String {
        let mut words = Vec::new();
        for (status, kind) in [(major, STATUS_GSS_CODE), (minor, STATUS_MECH_CODE)] {
            if status == 0 {
                continue;
            }
            let mut context = 0u32;
            for _ in 0..STATUS_MESSAGES_MAX {
                let mut ignored = 0;
                let mut text = Buffer::empty();
                let mut mechanism = oid(MECH_KRB5);
                // SAFETY: all pointers are to live locals; the text buffer
                // is released below.
                let result = unsafe {
                    (self.display_status)(&mut ignored, status, kind, &mut mechanism, &mut context, &mut text)
                };
                if result & ERROR_MASK != 0 {
                    break;
                }
                words.push(self.take(&mut text));
                if context == 0 {
                    break;
                }
            }
        }
        if words.is_empty() {
            format!("GSS-API status {major:#x}, {minor:#x}")
        } else {
            words.join("; ")
        }
    }

    /// Copies and releases a buffer the library gave.
    fn take(&self, buffer: &mut Buffer) -> String {
        String::from_utf8_lossy(&self.take_bytes(buffer)).into_owned()
    }

    fn take_bytes(&self, buffer: &mut Buffer) -> Vec<u8> {
        let bytes = if buffer.value.is_null() || buffer.length == 0 {
            Vec::new()
        } else {
            // SAFETY: the library filled `length` bytes at `value`.
            unsafe { std::slice::from_raw_parts(buffer.value as *const u8, buffer.length) }.to_vec()
        };
        let mut minor = 0;
        // SAFETY: a buffer the library allocated, released once.
        unsafe { (self.release_buffer)(&mut minor, buffer) };
        bytes
    }

    fn check(&self, major: Major, minor: Minor) -> Result<Major, String> {
        if major & ERROR_MASK != 0 {
            Err(self.describe(major, minor))
        } else {
            Ok(major)
        }
    }

    /// A principal name, in canonical Kerberos form.
    fn principal_name(&'static self, text: &str) -> Result<Name, String> {
        let mut minor = 0;
        let mut imported: NameHandle = ptr::null_mut();
        let mut buffer = Buffer::of(text.as_bytes());
        let mut kind = oid(NT_KRB5_PRINCIPAL);
        // SAFETY: the input buffer and OID outlive the call; the name is
        // owned by the returned `Name`.
        let major = unsafe { (self.import_name)(&mut minor, &mut buffer, &mut kind, &mut imported) };
        self.check(major, minor)?;
        let imported = Name { gss: self, handle: imported };
        let mut canonical: NameHandle = ptr::null_mut();
        let mut mechanism = oid(MECH_KRB5);
        // SAFETY: as above.
        let major = unsafe { (self.canonicalize_name)(&mut minor, imported.handle, &mut mechanism, &mut canonical) };
        self.check(major, minor)?;
        Ok(Name { gss: self, handle: canonical })
    }
}

/// A GSS name, released on drop.
struct Name {
    gss: &'static Gss,
    handle: NameHandle,
}

impl Name {
    fn display(&self) -> Result<String, String> {
        let mut minor = 0;
        let mut text = Buffer::empty();
        let mut kind: *mut OidDesc = ptr::null_mut();
        // SAFETY: a live name; the text buffer is released by `take`.
        let major = unsafe { (self.gss.display_name)(&mut minor, self.handle, &mut text, &mut kind) };
        self.gss.check(major, minor)?;
        let bytes = self.gss.take_bytes(&mut text);
        String::from_utf8(bytes).map_err(|_| "the name is not UTF-8".to_string())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            let mut minor = 0;
            // SAFETY: the name is released once, here.
            unsafe { (self.gss.release_name)(&mut minor, &mut self.handle) };
        }
    }
}

/// The server's acceptor credential: the service principal's key from the
/// keytab, acquired once at start (as ZooKeeper logs in once).
pub struct Acceptor {
    gss: &'static Gss,
    principal: String,
    key_tab: PathBuf,
    default_realm: String,
    credential: CredentialHandle,
}

// SAFETY: MIT krb5's credentials are immutable once acquired and guarded by
// the library's own lock where it caches; every shard uses the one handle
// for its own contexts, as a multi-threaded GSS-API server does.
unsafe impl Send for Acceptor {}
unsafe impl Sync for Acceptor {}

impl Acceptor {
    /// Acquires the credential of `login`. MIT krb5 names the acceptor's
    /// keytab through the process environment (`KRB5_KTNAME`), which this
    /// sets: a server has one JAAS `Server` principal, and this runs at
    /// start, before any other thread uses Kerberos.
    pub fn acquire(login: &KerberosLogin) -> Result<Acceptor, AcceptorError> {
        let key_tab = login.key_tab.clone();
        // Opened first so a missing or unreadable file is named as such,
        // not as the library's "no key table entry".
        std::fs::File::open(&key_tab).map_err(|error| AcceptorError::KeyTab { path: key_tab.clone(), error })?;
        let gss = gss()?;
        std::env::set_var("KRB5_KTNAME", format!("FILE:{}", key_tab.display()));
        let principal_error =
            |message: String| AcceptorError::Principal { principal: login.principal.clone(), message };
        let name = gss.principal_name(&login.principal).map_err(principal_error)?;
        let credential = acquire_credential(gss, &name).map_err(|message| AcceptorError::Credential {
            principal: login.principal.clone(),
            key_tab: key_tab.clone(),
            message,
        })?;
        let mut acceptor =
            Acceptor { gss, principal: String::new(), key_tab, default_realm: String::new(), credential };
        acceptor.principal = name.display().map_err(principal_error)?;
        acceptor.default_realm = default_realm(gss)?;
        Ok(acceptor)
    }

    /// The service principal, with its realm.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    pub fn key_tab(&self) -> &Path {
        &self.key_tab
    }

    /// krb5.conf's default realm, as the library reads it.
    pub fn default_realm(&self) -> &str {
        &self.default_realm
    }

    /// A fresh context for one connection's exchange.
    pub fn context(&self) -> Context {
        Context { gss: self.gss, credential: self.credential, handle: ptr::null_mut(), peer: None }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the credential is released once, here; no context made
        // from it outlives the acceptor (the config owns both).
        unsafe { (self.gss.release_cred)(&mut minor, &mut self.credential) };
    }
}

fn acquire_credential(gss: &'static Gss, name: &Name) -> Result<CredentialHandle, String> {
    let mut minor = 0;
    let mut mechanisms: *mut OidSetDesc = ptr::null_mut();
    // SAFETY: the set is made, filled and released here.
    let major = unsafe { (gss.create_empty_oid_set)(&mut minor, &mut mechanisms) };
    gss.check(major, minor)?;
    let mut krb5 = oid(MECH_KRB5);
    // SAFETY: the library copies the member into the set.
    let major = unsafe { (gss.add_oid_set_member)(&mut minor, &mut krb5, &mut mechanisms) };
    let added = gss.check(major, minor);
    let mut credential: CredentialHandle = ptr::null_mut();
    let acquired = added.and_then(|_| {
        // SAFETY: live name and set; the credential handle is returned to
        // the caller, which owns it.
        let major = unsafe {
            (gss.acquire_cred)(
                &mut minor,
                name.handle,
                INDEFINITE,
                mechanisms,
                CREDENTIAL_ACCEPT,
                &mut credential,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        gss.check(major, minor)
    });
    let mut ignored = 0;
    // SAFETY: released once, after its last use.
    unsafe { (gss.release_oid_set)(&mut ignored, &mut mechanisms) };
    acquired.map(|_| credential)
}

/// The default realm, as the library resolves a name without one: the
/// realm it appends to a bare principal.
fn default_realm(gss: &'static Gss) -> Result<String, AcceptorError> {
    let full = gss.principal_name("zoocore").and_then(|name| name.display()).map_err(AcceptorError::DefaultRealm)?;
    Ok(full.split_once('@').map(|(_, realm)| realm.to_string()).unwrap_or_default())
}

/// One connection's acceptor context, deleted on drop.
pub struct Context {
    gss: &'static Gss,
    credential: CredentialHandle,
    handle: ContextHandle,
    /// The initiator's principal, once the context is established.
    peer: Option<String>,
}

impl Context {
    fn buffer_call(
        &mut self,
        call: impl FnOnce(&Gss, *mut Minor, ContextHandle, *mut Buffer, *mut Buffer) -> Major,
        input: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut minor = 0;
        let mut input = Buffer::of(input);
        let mut output = Buffer::empty();
        let major = call(self.gss, &mut minor, self.handle, &mut input, &mut output);
        let bytes = self.gss.take_bytes(&mut output);
        self.gss.check(major, minor)?;
        Ok(bytes)
    }
}

impl AcceptContext for Context {
    fn accept(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
        let gss = self.gss;
        let mut minor = 0;
        let mut input = Buffer::of(token);
        let mut output = Buffer::empty();
        let mut source: NameHandle = ptr::null_mut();
        // SAFETY: the context handle is this value's own (null at first,
        // then the library's); the source name is owned below and the
        // output token released by `take_bytes`.
        let major = unsafe {
            (gss.accept_sec_context)(
                &mut minor,
                &mut self.handle,
                self.credential,
                &mut input,
                ptr::null_mut(),
                &mut source,
                ptr::null_mut(),
                &mut output,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let source = Name { gss, handle: source };
        let reply = gss.take_bytes(&mut output);
        let major = gss.check(major, minor)?;
        let complete = major & CONTINUE_NEEDED == 0;
        if complete && !source.handle.is_null() {
            self.peer = Some(source.display()?);
        }
        Ok(((!reply.is_empty()).then_some(reply), complete))
    }

    fn peer(&self) -> Result<String, String> {
        self.peer.clone().ok_or_else(|| "the context is not established".to_string())
    }

    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.buffer_call(
            // SAFETY: a live context; the library writes the output buffer,
            // which `buffer_call` releases.
            |gss, minor, handle, input, output| unsafe {
                (gss.wrap)(minor, handle, 0, 0, input, ptr::null_mut(), output)
            },
            message,
        )
    }

    fn unwrap(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.buffer_call(
            // SAFETY: as for wrap.
            |gss, minor, handle, input, output| unsafe {
                (gss.unwrap)(minor, handle, input, output, ptr::null_mut(), ptr::null_mut())
            },
            message,
        )
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            let mut minor = 0;
            // SAFETY: the context is deleted once, here.
            unsafe { (self.gss.delete_sec_context)(&mut minor, &mut self.handle, ptr::null_mut()) };
        }
    }
}

impl std::fmt::Debug for Acceptor {
    // The principal and the keytab's path only: never key material.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Acceptor").field("principal", &self.principal).field("key_tab", &self.key_tab).finish()
    }
}

impl PartialEq for Acceptor {
    fn eq(&self, other: &Self) -> bool {
        self.principal == other.principal && self.key_tab == other.key_tab
    }
}

impl Eq for Acceptor {}
