//! A minimal D-Bus client, written by hand to keep the runtime lean: the
//! wire format (marshalling of the types systemd's API needs), SASL
//! `EXTERNAL` authentication over a unix socket, method calls matched to
//! their replies by serial, error replies, and signals.
//!
//! It connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else
//! `/run/dbus/system_bus_socket`) or, when no bus is there and we are
//! root, to systemd's private peer-to-peer socket `/run/systemd/private`.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The system bus when nothing else is configured.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// systemd's own socket: peer to peer, root only, works without a bus.
pub const SYSTEMD_PRIVATE_SOCKET: &str = "/run/systemd/private";

/// The bus daemon itself.
const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// A message larger than this (the spec's limit) is refused.
const MAX_MESSAGE: usize = 128 << 20;
/// Signals kept while waiting for a reply.
const MAX_QUEUED_SIGNALS: usize = 1024;
/// The spec allows 32 levels of arrays plus 32 of structs.
const MAX_DEPTH: usize = 64;

/// What can go wrong talking D-Bus.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The socket failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The SASL exchange did not end in OK.
    #[error("D-Bus authentication on {path} refused: {answer:?}")]
    Auth { path: PathBuf, answer: String },
    /// Bytes that are not a valid message, or a reply of the wrong shape.
    #[error("malformed D-Bus message: {0}")]
    Malformed(String),
    /// The peer answered with an error reply.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    /// No answer in time.
    #[error("no D-Bus answer in time on {0}")]
    Timeout(PathBuf),
}

impl DbusError {
    /// The D-Bus error name of an error reply, e.g.
    /// `org.freedesktop.systemd1.NoSuchUnit`.
    pub fn remote_name(&self) -> Option<&str> {
        match self {
            DbusError::Remote { name, .. } => Some(name),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, DbusError>;

fn malformed(what: impl Into<String>) -> DbusError {
    DbusError::Malformed(what.into())
}

// ---------------------------------------------------------------------------------------------
// Values and signatures
// ---------------------------------------------------------------------------------------------

/// One D-Bus value. Dict entries decode as [`Value::Struct`] of two.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    Int16(i16),
    Uint16(u16),
    Int32(i32),
    Uint32(u32),
    Int64(i64),
    Uint64(u64),
    Double(f64),
    /// An index into the message's descriptors (we never send any).
    UnixFd(u32),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// `elem` is the element signature, needed for an empty array.
    Array {
        elem: String,
        items: Vec<Value>,
    },
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The value's type signature.
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::Int16(_) => "n".into(),
            Value::Uint16(_) => "q".into(),
            Value::Int32(_) => "i".into(),
            Value::Uint32(_) => "u".into(),
            Value::Int64(_) => "x".into(),
            Value::Uint64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::UnixFd(_) => "h".into(),
            Value::Str(_) => "s".into(),
            Value::ObjectPath(_) => "o".into(),
            Value::Signature(_) => "g".into(),
            Value::Array { elem, .. } => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    /// A string, object path or signature.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    /// What a variant holds (a plain value is itself).
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner.unwrap_variant(),
            other => other,
        }
    }

    /// A `(sv)` pair, the shape of systemd's unit properties.
    pub fn property(name: &str, value: Value) -> Value {
        Value::Struct(vec![
            Value::Str(name.into()),
            Value::Variant(Box::new(value)),
        ])
    }
}

/// The alignment of a type, from the first character of its signature.
fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// The length of the first complete type in `sig`.
fn single_type_len(sig: &[u8], depth: usize) -> Result<usize> {
    if depth > MAX_DEPTH {
        return Err(malformed("signature nested too deeply"));
    }
    match sig.first() {
        None => Err(malformed("signature ends inside a type")),
        Some(b'a') => Ok(1 + single_type_len(&sig[1..], depth + 1)?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut at = 1;
            while sig.get(at) != Some(&close) {
                at += single_type_len(&sig[at..], depth + 1)?;
            }
            if at == 1 {
                return Err(malformed("empty struct in signature"));
            }
            Ok(at + 1)
        }
        Some(
            b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b'h' | b's' | b'o'
            | b'g' | b'v',
        ) => Ok(1),
        Some(other) => Err(malformed(format!(
            "unknown type code {:?} in signature",
            char::from(*other)
        ))),
    }
}

/// Splits a signature into its complete types.
pub fn split_signature(sig: &str) -> Result<Vec<&str>> {
    let mut types = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let len = single_type_len(rest.as_bytes(), 0)?;
        // Signatures are ASCII, so a byte length is a char boundary.
        let (first, tail) = rest.split_at(len);
        types.push(first);
        rest = tail;
    }
    Ok(types)
}

// ---------------------------------------------------------------------------------------------
// Marshalling
// ---------------------------------------------------------------------------------------------

/// Writes values little-endian; offsets count from the start of `buf`,
/// which must be 8-aligned within the message.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::Int16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::Uint16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::Int32(n) => self.fixed(4, &n.to_le_bytes()),
            Value::Uint32(n) | Value::UnixFd(n) => self.u32(*n),
            Value::Int64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::Uint64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::Double(d) => self.fixed(8, &d.to_le_bytes()),
            Value::Str(s) | Value::ObjectPath(s) => self.string(s),
            Value::Signature(s) => self.signature(s),
            Value::Array { elem, items } => self.array(elem, items),
            Value::Struct(fields) => {
                self.pad(8);
                for field in fields {
                    self.value(field);
                }
            }
            Value::Variant(inner) => {
                self.signature(&inner.signature());
                self.value(inner);
            }
        }
    }

    fn fixed(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }

    /// The length counts the elements only, not the padding before the
    /// first one (which is there even for an empty array).
    fn array(&mut self, elem: &str, items: &[Value]) {
        self.u32(0);
        let length_at = self.buf.len() - 4;
        self.pad(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')));
        let start = self.buf.len();
        for item in items {
            self.value(item);
        }
        let length = (self.buf.len() - start) as u32;
        self.buf[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
    }
}

/// Reads values; `pos` counts from the start of `buf`, 8-aligned within
/// the message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            big_endian,
        }
    }

    fn align(&mut self, align: usize) -> Result<()> {
        let next = self.pos.div_ceil(align) * align;
        if next > self.buf.len() {
            return Err(malformed("padding runs past the end"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| malformed("value runs past the end"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        if self.big_endian {
            bytes.reverse();
        }
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        self.text(len)
    }

    fn signature(&mut self) -> Result<String> {
        let len = usize::from(self.take(1)?[0]);
        self.text(len)
    }

    /// `len` bytes of UTF-8 followed by a NUL.
    fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(malformed("string not NUL-terminated"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
    }

    /// Reads one value of the complete type `sig`.
    fn value(&mut self, sig: &str, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(malformed("value nested too deeply"));
        }
        let code = sig.as_bytes().first().copied().unwrap_or(0);
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(malformed(format!("boolean {n}"))),
            },
            b'n' => Value::Int16(i16::from_le_bytes(self.array()?)),
            b'q' => Value::Uint16(u16::from_le_bytes(self.array()?)),
            b'i' => Value::Int32(i32::from_le_bytes(self.array()?)),
            b'u' => Value::Uint32(self.u32()?),
            b'h' => Value::UnixFd(self.u32()?),
            b'x' => Value::Int64(i64::from_le_bytes(self.array()?)),
            b't' => Value::Uint64(u64::from_le_bytes(self.array()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.array()?)),
            b's' => Value::Str(self.string()?),
            b'o' => Value::ObjectPath(self.string()?),
            b'g' => Value::Signature(self.signature()?),
            b'v' => self.variant(depth)?,
            b'a' => self.array_value(&sig[1..], depth)?,
            b'(' | b'{' => self.struct_value(&sig[1..sig.len() - 1], depth)?,
            _ => return Err(malformed(format!("cannot read type {sig:?}"))),
        })
    }

    fn variant(&mut self, depth: usize) -> Result<Value> {
        let sig = self.signature()?;
        let types = split_signature(&sig)?;
        let [single] = types.as_slice() else {
            return Err(malformed(format!("variant signature {sig:?}")));
        };
        Ok(Value::Variant(Box::new(self.value(single, depth + 1)?)))
    }

    fn array_value(&mut self, elem: &str, depth: usize) -> Result<Value> {
        let len = self.u32()? as usize;
        self.align(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| malformed("array runs past the end"))?;
        let mut items = Vec::new();
        while self.pos < end {
            items.push(self.value(elem, depth + 1)?);
        }
        if self.pos != end {
            return Err(malformed("array length does not match its elements"));
        }
        Ok(Value::Array {
            elem: elem.to_owned(),
            items,
        })
    }

    fn struct_value(&mut self, inner: &str, depth: usize) -> Result<Value> {
        self.align(8)?;
        let fields = split_signature(inner)?
            .into_iter()
            .map(|t| self.value(t, depth + 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Value::Struct(fields))
    }
}

/// Marshals `values` as a message body (offset 0 is 8-aligned).
pub fn encode_body(values: &[Value]) -> Vec<u8> {
    let mut w = Writer::default();
    for v in values {
        w.value(v);
    }
    w.buf
}

/// Unmarshals a body of signature `sig`.
pub fn decode_body(body: &[u8], sig: &str, big_endian: bool) -> Result<Vec<Value>> {
    let mut r = Reader::new(body, big_endian);
    let values = split_signature(sig)?
        .into_iter()
        .map(|t| r.value(t, 0))
        .collect::<Result<Vec<_>>>()?;
    if r.pos != body.len() {
        return Err(malformed("bytes left after the body"));
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// The message types of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::MethodCall),
            2 => Some(Kind::MethodReturn),
            3 => Some(Kind::Error),
            4 => Some(Kind::Signal),
            _ => None,
        }
    }
}

/// Header field codes.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;

/// One message, header fields decoded, body kept as bytes until asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
    pub big_endian: bool,
}

impl Message {
    /// A method call; `args` make the body.
    pub fn method_call(
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Value],
    ) -> Message {
        Message {
            kind: Kind::MethodCall,
            flags: 0,
            serial: 0,
            path: Some(path.to_owned()),
            interface: Some(interface.to_owned()),
            member: Some(member.to_owned()),
            error_name: None,
            reply_serial: None,
            destination: destination.map(str::to_owned),
            sender: None,
            signature: args.iter().map(Value::signature).collect(),
            body: encode_body(args),
            big_endian: false,
        }
    }

    /// The body's values.
    pub fn args(&self) -> Result<Vec<Value>> {
        decode_body(&self.body, &self.signature, self.big_endian)
    }

    /// Whether this is the signal `interface.member`.
    pub fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind == Kind::Signal
            && self.interface.as_deref() == Some(interface)
            && self.member.as_deref() == Some(member)
    }

    /// The wire form, little-endian, with `serial`.
    pub fn encode(&self, serial: u32) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf
            .extend_from_slice(&[b'l', self.kind as u8, self.flags, 1]);
        w.u32(self.body.len() as u32);
        w.u32(serial);
        w.array("(yv)", &self.header_fields());
        w.pad(8);
        w.buf.extend_from_slice(&self.body);
        w.buf
    }

    fn header_fields(&self) -> Vec<Value> {
        let field =
            |code, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(v.into())]);
        let text = |code, s: &Option<String>, make: fn(String) -> Value| {
            s.clone().map(|s| field(code, make(s)))
        };
        let mut fields: Vec<Value> = [
            text(FIELD_PATH, &self.path, Value::ObjectPath),
            text(FIELD_INTERFACE, &self.interface, Value::Str),
            text(FIELD_MEMBER, &self.member, Value::Str),
            text(FIELD_ERROR_NAME, &self.error_name, Value::Str),
            self.reply_serial
                .map(|s| field(FIELD_REPLY_SERIAL, Value::Uint32(s))),
            text(FIELD_DESTINATION, &self.destination, Value::Str),
            text(FIELD_SENDER, &self.sender, Value::Str),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !self.signature.is_empty() {
            fields.push(field(
                FIELD_SIGNATURE,
                Value::Signature(self.signature.clone()),
            ));
        }
        fields
    }

    /// The total length of the message whose first 16 bytes are `head`.
    pub fn wire_length(head: &[u8; 16]) -> Result<usize> {
        let big_endian = match head[0] {
            b'l' => false,
            b'B' => true,
            other => return Err(malformed(format!("endianness byte {other:#x}"))),
        };
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[at..at + 4]);
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (body, fields) = (word(4) as usize, word(12) as usize);
        let header = (16 + fields).div_ceil(8) * 8;
        let total = header.saturating_add(body);
        if total > MAX_MESSAGE {
            return Err(malformed(format!("message of {total} bytes")));
        }
        Ok(total)
    }

    /// Parses one whole message.
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let head: &[u8; 16] = bytes
            .get(..16)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| malformed("shorter than a header"))?;
        if Message::wire_length(head)? != bytes.len() {
            return Err(malformed("length does not match the header"));
        }
        let big_endian = bytes[0] == b'B';
        let kind = Kind::from_u8(bytes[1])
            .ok_or_else(|| malformed(format!("message type {}", bytes[1])))?;
        let mut r = Reader::new(bytes, big_endian);
        r.pos = 4;
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        let fields = r.value("a(yv)", 0)?;
        r.align(8)?;
        let body = bytes[r.pos..].to_vec();
        if body.len() != body_len {
            return Err(malformed("body length does not match the header"));
        }
        let mut msg = Message {
            kind,
            flags: bytes[2],
            serial,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            signature: String::new(),
            body,
            big_endian,
        };
        if let Value::Array { items, .. } = fields {
            for item in items {
                msg.set_field(&item);
            }
        }
        Ok(msg)
    }

    /// Stores one `(yv)` header field; unknown codes are ignored (spec).
    fn set_field(&mut self, item: &Value) {
        let Value::Struct(pair) = item else { return };
        let [Value::Byte(code), value] = pair.as_slice() else {
            return;
        };
        let value = value.unwrap_variant();
        let text = value.as_str().map(str::to_owned);
        match *code {
            FIELD_PATH => self.path = text,
            FIELD_INTERFACE => self.interface = text,
            FIELD_MEMBER => self.member = text,
            FIELD_ERROR_NAME => self.error_name = text,
            FIELD_REPLY_SERIAL => {
                if let Value::Uint32(s) = value {
                    self.reply_serial = Some(*s);
                }
            }
            FIELD_DESTINATION => self.destination = text,
            FIELD_SENDER => self.sender = text,
            FIELD_SIGNATURE => self.signature = text.unwrap_or_default(),
            _ => {}
        }
    }

    /// An error reply as a [`DbusError::Remote`].
    fn into_remote_error(self) -> DbusError {
        let message = self
            .args()
            .ok()
            .and_then(|a| a.first().and_then(|v| v.as_str().map(str::to_owned)))
            .unwrap_or_default();
        DbusError::Remote {
            name: self.error_name.unwrap_or_else(|| "(unnamed error)".into()),
            message,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// One authenticated connection, to a bus or straight to systemd.
pub struct Connection {
    stream: UnixStream,
    path: PathBuf,
    last_serial: u32,
    /// Signals read while waiting for a reply, for [`Connection::wait_signal`].
    signals: VecDeque<Message>,
    /// Through a bus daemon (destinations, AddMatch), not peer to peer.
    on_bus: bool,
}

impl Connection {
    /// The system bus, else (as root) systemd's private socket.
    pub fn system(timeout: Duration) -> Result<Connection> {
        let bus_path = system_bus_path();
        let bus_error = match Connection::bus(&bus_path, timeout) {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let private = Path::new(SYSTEMD_PRIVATE_SOCKET);
        if !root || !private.exists() {
            return Err(bus_error);
        }
        Connection::peer(private, timeout).map_err(|private_error| {
            malformed(format!(
                "no system bus ({bus_error}) and no systemd private socket ({private_error})"
            ))
        })
    }

    /// A bus connection: authenticate, then `Hello` for a unique name.
    pub fn bus(path: &Path, timeout: Duration) -> Result<Connection> {
        let mut conn = Connection::peer(path, timeout)?;
        conn.on_bus = true;
        conn.call(
            Message::method_call(Some(BUS_NAME), BUS_PATH, BUS_NAME, "Hello", &[]),
            timeout,
        )?;
        Ok(conn)
    }

    /// A peer-to-peer connection (no bus daemon, no `Hello`).
    pub fn peer(path: &Path, timeout: Duration) -> Result<Connection> {
        let io_err = |op| {
            let path = path.to_owned();
            move |source| DbusError::Io { op, path, source }
        };
        let stream = UnixStream::connect(path).map_err(io_err("connect"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(io_err("set timeout on"))?;
        let mut conn = Connection {
            stream,
            path: path.to_owned(),
            last_serial: 0,
            signals: VecDeque::new(),
            on_bus: false,
        };
        conn.authenticate()?;
        Ok(conn)
    }

    /// Whether messages go through a bus daemon.
    pub fn on_bus(&self) -> bool {
        self.on_bus
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> DbusError {
        DbusError::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// SASL: a NUL byte, `AUTH EXTERNAL <uid in hex>`, then `BEGIN`.
    fn authenticate(&mut self) -> Result<()> {
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        self.write_all(auth_line(uid).as_bytes(), "authenticate on")?;
        let answer = self.read_line()?;
        if !answer.starts_with("OK ") {
            return Err(DbusError::Auth {
                path: self.path.clone(),
                answer,
            });
        }
        self.write_all(b"BEGIN\r\n", "authenticate on")
    }

    fn write_all(&mut self, bytes: &[u8], op: &'static str) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| self.io_error(op, e))
    }

    /// One `\r\n`-terminated SASL line, read a byte at a time so nothing
    /// after it is consumed.
    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            if line.len() > 4096 {
                return Err(malformed("SASL line too long"));
            }
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) => {
                    return Err(self.io_error("authenticate on", ErrorKind::UnexpectedEof.into()))
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error("authenticate on", e)),
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends a message; returns its serial.
    pub fn send(&mut self, msg: &Message) -> Result<u32> {
        self.last_serial = self.last_serial.wrapping_add(1).max(1);
        let serial = self.last_serial;
        self.write_all(&msg.encode(serial), "send to")?;
        Ok(serial)
    }

    /// Sends a method call and waits for its reply; an error reply becomes
    /// [`DbusError::Remote`]. Signals read meanwhile are kept.
    pub fn call(&mut self, mut msg: Message, timeout: Duration) -> Result<Message> {
        if !self.on_bus {
            msg.destination = None;
        }
        let serial = self.send(&msg)?;
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.receive(deadline)?;
            match reply.kind {
                Kind::Signal => self.keep_signal(reply),
                _ if reply.reply_serial != Some(serial) => {}
                Kind::Error => return Err(reply.into_remote_error()),
                _ => return Ok(reply),
            }
        }
    }

    /// Queues a signal for later; the oldest go when too many pile up.
    fn keep_signal(&mut self, msg: Message) {
        if self.signals.len() >= MAX_QUEUED_SIGNALS {
            self.signals.pop_front();
        }
        self.signals.push_back(msg);
    }

    /// The first signal `wanted` accepts, queued or read before `deadline`.
    pub fn wait_signal(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<Message> {
        if let Some(at) = self.signals.iter().position(&wanted) {
            if let Some(msg) = self.signals.remove(at) {
                return Ok(msg);
            }
        }
        self.signals.clear();
        loop {
            let msg = self.receive(deadline)?;
            if msg.kind == Kind::Signal && wanted(&msg) {
                return Ok(msg);
            }
        }
    }

    /// Asks the bus daemon to route matching signals to us (a no-op peer to
    /// peer, where systemd sends every signal).
    pub fn add_match(&mut self, rule: &str, timeout: Duration) -> Result<()> {
        if !self.on_bus {
            return Ok(());
        }
        let msg = Message::method_call(
            Some(BUS_NAME),
            BUS_PATH,
            BUS_NAME,
            "AddMatch",
            &[Value::Str(rule.to_owned())],
        );
        self.call(msg, timeout).map(drop)
    }

    /// Reads one whole message before `deadline`.
    fn receive(&mut self, deadline: Instant) -> Result<Message> {
        let mut head = [0u8; 16];
        self.read_exact_by(&mut head, deadline)?;
        let total = Message::wire_length(&head)?;
        let mut bytes = vec![0u8; total];
        bytes[..16].copy_from_slice(&head);
        self.read_exact_by(&mut bytes[16..], deadline)?;
        Message::decode(&bytes)
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(self.path.clone()));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error("set timeout on", e))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(self.io_error("read from", ErrorKind::UnexpectedEof.into())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(DbusError::Timeout(self.path.clone()))
                }
                Err(e) => return Err(self.io_error("read from", e)),
            }
        }
        Ok(())
    }
}

/// The first line of the SASL exchange for `uid`: the uid's decimal
/// digits, hex-encoded.
pub fn auth_line(uid: u32) -> String {
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\0AUTH EXTERNAL {hex}\r\n")
}

/// The system bus socket: the first `unix:path=` of
/// `$DBUS_SYSTEM_BUS_ADDRESS`, else the well-known path.
pub fn system_bus_path() -> PathBuf {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| unix_path_of_address(&a))
        .unwrap_or_else(|| PathBuf::from(SYSTEM_BUS_SOCKET))
}

/// The `path=` of the first `unix:` entry of a D-Bus address list, with
/// its `%XX` escapes undone.
pub fn unix_path_of_address(address: &str) -> Option<PathBuf> {
    address.split(';').find_map(|entry| {
        let params = entry.strip_prefix("unix:")?;
        let value = params.split(',').find_map(|p| p.strip_prefix("path="))?;
        unescape_address_value(value).map(PathBuf::from)
    })
}

fn unescape_address_value(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_line_hex_encodes_the_decimal_uid() {
        assert_eq!(auth_line(0), "\0AUTH EXTERNAL 30\r\n");
        assert_eq!(auth_line(1000), "\0AUTH EXTERNAL 31303030\r\n");
    }

    #[test]
    fn addresses_give_the_first_unix_path() {
        assert_eq!(
            unix_path_of_address("tcp:host=x;unix:path=/run/dbus/system_bus_socket,guid=ab"),
            Some(PathBuf::from("/run/dbus/system_bus_socket"))
        );
        assert_eq!(
            unix_path_of_address("unix:path=/tmp/a%20b"),
            Some(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(unix_path_of_address("unix:abstract=/x"), None);
        assert_eq!(unix_path_of_address("unix:path=/bad%zz"), None);
    }

    #[test]
    fn signatures_split_into_complete_types() {
        assert_eq!(
            split_signature("ssa(sv)a(sa(sv))").unwrap(),
            ["s", "s", "a(sv)", "a(sa(sv))"]
        );
        assert_eq!(split_signature("a{sv}u").unwrap(), ["a{sv}", "u"]);
        assert!(split_signature("a").is_err());
        assert!(split_signature("(s").is_err());
        assert!(split_signature("()").is_err());
        assert!(split_signature("z").is_err());
    }

    #[test]
    fn basic_types_are_aligned_little_endian() {
        // y, then u aligned to 4, then t aligned to 8, then s.
        let body = encode_body(&[
            Value::Byte(7),
            Value::Uint32(0x0102_0304),
            Value::Uint64(1),
            Value::Str("ab".into()),
        ]);
        assert_eq!(
            body,
            [
                7, 0, 0, 0, //
                4, 3, 2, 1, //
                1, 0, 0, 0, 0, 0, 0, 0, //
                2, 0, 0, 0, b'a', b'b', 0,
            ]
        );
    }

    #[test]
    fn arrays_count_bytes_without_the_padding_before_the_first_element() {
        // a(sv) holding ("PIDs", <au [5]>).
        let pids = Value::Array {
            elem: "u".into(),
            items: vec![Value::Uint32(5)],
        };
        let props = Value::Array {
            elem: "(sv)".into(),
            items: vec![Value::property("PIDs", pids)],
        };
        let body = encode_body(std::slice::from_ref(&props));
        let expected: Vec<u8> = [
            &[24, 0, 0, 0][..],                       // array length: 24 bytes of elements
            &[0, 0, 0, 0],                            // pad to the struct's 8
            &[4, 0, 0, 0, b'P', b'I', b'D', b's', 0], // "PIDs"
            &[2, b'a', b'u', 0],                      // variant signature "au"
            &[0, 0, 0],                               // pad to 4 for the inner length
            &[4, 0, 0, 0],                            // inner array: 4 bytes
            &[5, 0, 0, 0],                            // 5
        ]
        .concat();
        assert_eq!(body, expected);
        assert_eq!(decode_body(&body, "a(sv)", false).unwrap(), [props]);
    }

    #[test]
    fn empty_arrays_still_pad_to_their_element() {
        let empty = Value::Array {
            elem: "(sa(sv))".into(),
            items: Vec::new(),
        };
        let body = encode_body(&[Value::Byte(1), empty.clone()]);
        assert_eq!(body, [1, 0, 0, 0, 0, 0, 0, 0]);
        let decoded = decode_body(&body, "ya(sa(sv))", false).unwrap();
        assert_eq!(decoded, [Value::Byte(1), empty]);
    }

    #[test]
    fn a_method_call_encodes_byte_for_byte() {
        let msg = Message::method_call(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        );
        let bytes = msg.encode(1);
        let mut expected: Vec<u8> = vec![b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        expected.extend_from_slice(&[109, 0, 0, 0]); // header fields: 109 bytes
                                                     // PATH (1), variant "o", "/org/freedesktop/DBus" (21 bytes).
        expected.extend_from_slice(&[1, 1, b'o', 0, 21, 0, 0, 0]);
        expected.extend_from_slice(b"/org/freedesktop/DBus\0");
        expected.extend_from_slice(&[0, 0]); // pad to 8
                                             // INTERFACE (2), "s", "org.freedesktop.DBus" (20 bytes).
        expected.extend_from_slice(&[2, 1, b's', 0, 20, 0, 0, 0]);
        expected.extend_from_slice(b"org.freedesktop.DBus\0");
        expected.extend_from_slice(&[0, 0, 0]);
        // MEMBER (3), "s", "Hello".
        expected.extend_from_slice(&[3, 1, b's', 0, 5, 0, 0, 0]);
        expected.extend_from_slice(b"Hello\0");
        expected.extend_from_slice(&[0, 0]);
        // DESTINATION (6), "s", "org.freedesktop.DBus".
        expected.extend_from_slice(&[6, 1, b's', 0, 20, 0, 0, 0]);
        expected.extend_from_slice(b"org.freedesktop.DBus\0");
        expected.extend_from_slice(&[0, 0, 0]); // header padding to 8, no body
        assert_eq!(bytes, expected);
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.serial, 1);
        assert_eq!(back.member.as_deref(), Some("Hello"));
        assert_eq!(back.destination.as_deref(), Some("org.freedesktop.DBus"));
    }

    #[test]
    fn start_transient_unit_round_trips() {
        let args = [
            Value::Str("berth-c1.scope".into()),
            Value::Str("fail".into()),
            Value::Array {
                elem: "(sv)".into(),
                items: vec![
                    Value::property("Delegate", Value::Bool(true)),
                    Value::property("Slice", Value::Str("system.slice".into())),
                    Value::property("MemoryMax", Value::Uint64(64 << 20)),
                ],
            },
            Value::Array {
                elem: "(sa(sv))".into(),
                items: Vec::new(),
            },
        ];
        let msg = Message::method_call(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &args,
        );
        assert_eq!(msg.signature, "ssa(sv)a(sa(sv))");
        let back = Message::decode(&msg.encode(9)).unwrap();
        assert_eq!(back.signature, "ssa(sv)a(sa(sv))");
        assert_eq!(back.args().unwrap(), args);
    }

    #[test]
    fn error_replies_and_signals_decode() {
        // An error reply as a peer would send it.
        let mut reply = Message::method_call(None, "/", "x.y", "z", &[]);
        reply.kind = Kind::Error;
        reply.path = None;
        reply.interface = None;
        reply.member = None;
        reply.error_name = Some("org.freedesktop.systemd1.UnitExists".into());
        reply.reply_serial = Some(3);
        reply.signature = "s".into();
        reply.body = encode_body(&[Value::Str("Unit x.scope already exists.".into())]);
        let back = Message::decode(&reply.encode(4)).unwrap();
        assert_eq!(back.reply_serial, Some(3));
        let err = back.into_remote_error();
        assert_eq!(
            err.remote_name(),
            Some("org.freedesktop.systemd1.UnitExists")
        );
        assert_eq!(
            err.to_string(),
            "org.freedesktop.systemd1.UnitExists: Unit x.scope already exists."
        );
        // JobRemoved (uoss).
        let mut signal = Message::method_call(
            None,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "JobRemoved",
            &[
                Value::Uint32(7),
                Value::ObjectPath("/org/freedesktop/systemd1/job/7".into()),
                Value::Str("berth-c1.scope".into()),
                Value::Str("done".into()),
            ],
        );
        signal.kind = Kind::Signal;
        let back = Message::decode(&signal.encode(5)).unwrap();
        assert!(back.is_signal("org.freedesktop.systemd1.Manager", "JobRemoved"));
        assert_eq!(back.args().unwrap()[3], Value::Str("done".into()));
    }

    #[test]
    fn big_endian_messages_decode() {
        // A reply with body u32 = 1, big-endian: header fields REPLY_SERIAL=2, SIGNATURE="u".
        let mut bytes = vec![b'B', 2, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0, 0, 0, 15]);
        bytes.extend_from_slice(&[5, 1, b'u', 0, 0, 0, 0, 2]);
        bytes.extend_from_slice(&[8, 1, b'g', 0, 1, b'u', 0]);
        bytes.push(0); // pad to 8
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        let msg = Message::decode(&bytes).unwrap();
        assert_eq!(msg.kind, Kind::MethodReturn);
        assert_eq!(msg.serial, 9);
        assert_eq!(msg.reply_serial, Some(2));
        assert_eq!(msg.args().unwrap(), [Value::Uint32(1)]);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(Message::decode(&[b'l'; 8]).is_err());
        let mut bytes = Message::method_call(None, "/", "a.b", "c", &[Value::Uint32(1)]).encode(1);
        let last = bytes.len() - 1;
        bytes.truncate(last);
        assert!(Message::decode(&bytes).is_err());
        // A string length pointing past the end.
        assert!(decode_body(&[0xff, 0xff, 0xff, 0x7f], "s", false).is_err());
        // A nested array bomb.
        let deep = "a".repeat(200) + "y";
        assert!(decode_body(&[0, 0, 0, 0], &deep, false).is_err());
        // A boolean that is neither 0 nor 1.
        assert!(decode_body(&[2, 0, 0, 0], "b", false).is_err());
    }
}
