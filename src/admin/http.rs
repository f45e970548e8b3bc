//! A small HTTP/1.1 server loop for the AdminServer and the metrics page:
//! requests are parsed with `httparse`, bounded in size and in time, and
//! answered one at a time per connection (keep-alive is honoured).

use std::future::Future;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::limits::HEADERS_MAX;
pub use crate::limits::IDLE_TIMEOUT;
pub use crate::limits::REQUEST_BODY_BYTES_MAX;
pub use crate::limits::REQUEST_HEAD_BYTES_MAX;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
}

impl Request {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers, e.g. `Allow` on a 405.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, body: body.into(), headers: Vec::new() }
    }

    pub fn json(value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response::new(200, "application/json", body)
    }

    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", text.as_bytes().to_vec())
    }

    pub fn method_not_allowed() -> Response {
        let mut response = Response::text(405, "405 Method Not Allowed: use GET\n");
        response.headers.push(("Allow", "GET, HEAD".to_string()));
        response
    }

    pub fn not_found() -> Response {
        Response::text(404, "404 Not Found\n")
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Decodes `%XX` escapes (and `+` as a space in a query).
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 3;
                        continue;
                    }
                    None => decoded.push(b'%'),
                }
            }
            b'+' if plus_is_space => decoded.push(b' '),
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect();
    (percent_decode(path, false), query)
}

/// What reading one request gave.
enum Read {
    Request {
        request: Request,
        keep_alive: bool,
    },
    /// The peer closed (or went idle) between requests.
    Closed,
    /// A request that is answered with an error, then the connection closes.
    Refused(Response),
}

/// Reads one request into `buffer` (which may hold bytes of the next one
/// afterwards).
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Read {
    let mut chunk = [0u8; 2048];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buffer) {
            Ok(httparse::Status::Complete(head_length)) => {
                let method = parsed.method.unwrap_or("GET").to_string();
                let target = parsed.path.unwrap_or("/");
                let http_1_0 = parsed.version == Some(0);
                let mut keep_alive = !http_1_0;
                let mut body_length = 0usize;
                for header in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(header.value);
                    if header.name.eq_ignore_ascii_case("connection") {
                        let value = value.to_ascii_lowercase();
                        if value.contains("close") {
                            keep_alive = false;
                        } else if value.contains("keep-alive") {
                            keep_alive = true;
                        }
                    } else if header.name.eq_ignore_ascii_case("content-length") {
                        match value.trim().parse::<usize>() {
                            Ok(length) => body_length = length,
                            Err(_) => return Read::Refused(Response::text(400, "400 Bad Request: Content-Length\n")),
                        }
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Read::Refused(Response::text(400, "400 Bad Request: bodies are not accepted\n"));
                    }
                }
                if body_length > REQUEST_BODY_BYTES_MAX {
                    return Read::Refused(Response::text(413, "413 Payload Too Large\n"));
                }
                let (path, query) = split_target(target);
                let request = Request { method, path, query };
                // Drop the head and the body (commands take no body).
                while buffer.len() < head_length + body_length {
                    match read_some(stream, &mut chunk).await {
                        Some(count) => buffer.extend_from_slice(&chunk[..count]),
                        None => return Read::Closed,
                    }
                }
                buffer.drain(..head_length + body_length);
                return Read::Request { request, keep_alive };
            }
            Ok(httparse::Status::Partial) => {
                if buffer.len() >= REQUEST_HEAD_BYTES_MAX {
                    return Read::Refused(Response::text(431, "431 Request Header Fields Too Large\n"));
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Read::Refused(Response::text(431, "431 Request Header Fields Too Large\n"));
            }
            Err(error) => return Read::Refused(Response::text(400, &format!("400 Bad Request: {error}\n"))),
        }
        let room = (REQUEST_HEAD_BYTES_MAX - buffer.len()).min(chunk.len());
        match read_some(stream, &mut chunk[..room]).await {
            Some(count) => buffer.extend_from_slice(&chunk[..count]),
            None => return Read::Closed,
        }
    }
}

/// Reads what is there; None on end of stream, error or idle timeout.
async fn read_some(stream: &mut TcpStream, into: &mut [u8]) -> Option<usize> {
    match stream.read(into).await {
        Ok(0) | Err(_) => None,
        Ok(count) => Some(count),
    }
}

async fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool, keep_alive: bool) -> bool {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nServer: zoocore/{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    for (name, value) in &response.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n\r\n" } else { b"Connection: close\r\n\r\n" });
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out).await.is_ok() && stream.flush().await.is_ok()
}

/// Serves requests on one connection until the peer closes, goes idle, or
/// asks to close.
pub async fn serve<F, Fut>(mut stream: TcpStream, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let mut buffer = Vec::with_capacity(1024);
    loop {
        match read_request(&mut stream, &mut buffer).await {
            Read::Closed => break,
            Read::Refused(response) => {
                tracing::debug!(status = response.status, "admin request refused");
                write_response(&mut stream, &response, false, false).await;
                break;
            }
            Read::Request { request, keep_alive } => {
                let head_only = request.method == "HEAD";
                let response = if request.method == "GET" || head_only {
                    handle(request).await
                } else {
                    Response::method_not_allowed()
                };
                if !write_response(&mut stream, &response, head_only, keep_alive).await || !keep_alive {
                    break;
                }
            }
        }
    }
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_and_decode() {
        let (path, query) = split_target("/commands/stmk?traceMask=5&x=a%20b+c");
        assert_eq!(path, "/commands/stmk");
        assert_eq!(query, vec![("traceMask".into(), "5".into()), ("x".into(), "a b c".into())]);
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("/a%2Fb", false), "/a/b");
    }
}
