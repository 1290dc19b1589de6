//! The metrics endpoint's HTTP, with no I/O: a request's bytes in, the
//! whole response out. One request per connection (`Connection: close`),
//! so there is nothing to keep between requests. Requests are parsed by
//! `httparse`.

/// Longest request accepted; a longer one is answered 400 and closed.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 32;

/// What the endpoint serves, computed only when asked for.
pub trait Pages {
    /// True once the server listens on its port(s): `/healthz` is 200.
    fn healthy(&self) -> bool;
    /// The metrics page and its content type: OpenMetrics if `open`, the
    /// classic Prometheus text format otherwise.
    fn metrics(&self, open: bool) -> (String, &'static str);
}

/// The response to the request `input` starts with, or `None` while it is
/// incomplete (read more). Anything malformed or longer than
/// [`MAX_REQUEST_BYTES`] is answered 400.
pub fn respond(input: &[u8], pages: &impl Pages) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(input);
    let too_long = input.len() > MAX_REQUEST_BYTES;
    match parsed {
        Ok(httparse::Status::Partial) if !too_long => None,
        Ok(httparse::Status::Partial) => Some(plain(400, "Bad Request", "request too long\n")),
        Err(err) => Some(plain(400, "Bad Request", &format!("{err}\n"))),
        Ok(httparse::Status::Complete(_)) => Some(route(&request, pages)),
    }
}

/// The response to a complete request.
fn route(request: &httparse::Request, pages: &impl Pages) -> Vec<u8> {
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return plain(400, "Bad Request", "no method or path\n");
    };
    if method != "GET" {
        return plain(405, "Method Not Allowed", "only GET is served\n");
    }
    match path.split('?').next().unwrap_or(path) {
        "/metrics" => {
            // Prometheus asks for OpenMetrics in its Accept header;
            // anything else gets the classic format.
            let open = request.headers.iter().any(|header| {
                header.name.eq_ignore_ascii_case("accept")
                    && String::from_utf8_lossy(header.value)
                        .contains("application/openmetrics-text")
            });
            let (body, content_type) = pages.metrics(open);
            response(200, "OK", content_type, body.as_bytes())
        }
        "/healthz" if pages.healthy() => plain(200, "OK", "ok\n"),
        "/healthz" => plain(503, "Service Unavailable", "not listening yet\n"),
        _ => plain(404, "Not Found", "try /metrics or /healthz\n"),
    }
}

/// A plain-text response.
fn plain(status: u16, reason: &str, body: &str) -> Vec<u8> {
    response(status, reason, "text/plain; charset=utf-8", body.as_bytes())
}

/// A whole HTTP/1.1 response that closes the connection.
fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);

    impl Pages for Fixed {
        fn healthy(&self) -> bool {
            self.0
        }
        fn metrics(&self, open: bool) -> (String, &'static str) {
            let body = if open { "m 1\n# EOF\n" } else { "m 1\n" };
            (body.to_string(), "text/plain")
        }
    }

    fn status(response: &[u8]) -> String {
        String::from_utf8_lossy(response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_request_is_answered_once_complete() {
        let pages = Fixed(true);
        assert_eq!(
            respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", &pages),
            None
        );
        let full = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &pages).unwrap();
        assert_eq!(status(&full), "HTTP/1.1 200 OK");
        assert!(full.ends_with(b"\r\n\r\nm 1\n"));
        let open = b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
        assert!(respond(open, &pages).unwrap().ends_with(b"# EOF\n"));
    }

    #[test]
    fn health_follows_the_listeners() {
        let request = b"GET /healthz HTTP/1.0\r\n\r\n";
        assert_eq!(
            status(&respond(request, &Fixed(true)).unwrap()),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status(&respond(request, &Fixed(false)).unwrap()),
            "HTTP/1.1 503 Service Unavailable"
        );
    }

    #[test]
    fn bad_requests_get_a_400_and_others_their_status() {
        let pages = Fixed(true);
        let answer = |bytes: &[u8]| status(&respond(bytes, &pages).unwrap());
        assert_eq!(
            answer(b"\x00\x01garbage\r\n\r\n"),
            "HTTP/1.1 400 Bad Request"
        );
        let huge = [
            b"GET /metrics HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_REQUEST_BYTES],
        ]
        .concat();
        assert_eq!(answer(&huge), "HTTP/1.1 400 Bad Request");
        assert_eq!(
            answer(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(answer(b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
    }
}
