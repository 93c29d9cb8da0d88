//! A small WebDriver client (the W3C protocol over HTTP/1.1, JSON bodies) for driving the app
//! through tauri-driver: what `between bench app` and the app's end-to-end tests use. Errors
//! are sentences naming the request and the driver's answer.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub type Result<T> = std::result::Result<T, String>;

pub struct Driver {
    addr: SocketAddr,
    session: String,
}

/// One HTTP request. tauri-driver now and then closes a connection without answering (seen
/// about once in fifty requests); the request never reached WebKit then, so it is sent again.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    http_retrying(addr, method, path, body, 5, Duration::from_millis(50))
}

fn http_retrying(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    attempts: u32,
    pause: Duration,
) -> Result<(u16, Value)> {
    let mut last = String::new();
    for _ in 0..attempts {
        match http_once(addr, method, path, body) {
            Ok(answer) => return Ok(answer),
            Err(e) if e.ends_with(NO_ANSWER) => {
                last = e;
                std::thread::sleep(pause);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

const NO_ANSWER: &str = "no HTTP answer from the WebDriver";

fn http_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let fail = |e: std::io::Error| format!("{method} {path} to the WebDriver at {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(fail)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(fail)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: {NO_ANSWER}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    let value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Ok((status, value))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        let start = end + 2;
        if size == 0 || start + size > data.len() {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

impl Driver {
    /// A session on the app at `application` (tauri-driver starts it).
    pub fn start(port: u16, application: &str) -> Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application}
        }}});
        // tauri-driver listens before WebKitWebDriver behind it does; until then it drops
        // the session request unanswered (seen on a cold start): up to 10 s of retries.
        let (status, value) = http_retrying(
            addr,
            "POST",
            "/session",
            Some(&caps),
            40,
            Duration::from_millis(250),
        )?;
        let session = value["value"]["sessionId"]
            .as_str()
            .filter(|_| status == 200)
            .ok_or_else(|| format!("the WebDriver could not start the app ({status}): {value}"))?
            .to_string();
        Ok(Self { addr, session })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let full = format!("/session/{}{path}", self.session);
        let (status, value) = http(self.addr, method, &full, body.as_ref())?;
        if status == 200 {
            Ok(value["value"].clone())
        } else {
            Err(format!("{method} {path} failed ({status}): {value}"))
        }
    }

    /// The element `css` selects, if there is one now.
    pub fn find(&self, css: &str) -> Option<String> {
        self.try_find(css).ok()
    }

    /// The element `css` selects, or why not (none, or the driver's error).
    pub fn try_find(&self, css: &str) -> Result<String> {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        found[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element {css}: {found}"))
    }

    /// Waits (up to `secs`) for `css` to select an element.
    pub fn wait_for(&self, css: &str, secs: u64) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(el) = self.find(css) {
                return Ok(el);
            }
            if Instant::now() >= deadline {
                return Err(format!("no element {css} within {secs} s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to `secs`) until `check` holds, polling every 100 ms; `what` names it in
    /// the error.
    pub fn wait_until(
        &self,
        what: &str,
        secs: u64,
        mut check: impl FnMut(&Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            if Instant::now() >= deadline {
                return Err(format!("{what}: not within {secs} s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn click(&self, el: &str) -> Result<()> {
        self.call("POST", &format!("/element/{el}/click"), Some(json!({})))
            .map(drop)
    }

    pub fn clear(&self, el: &str) -> Result<()> {
        self.call("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .map(drop)
    }

    /// Types `text` into the element, as keystrokes.
    pub fn type_text(&self, el: &str, text: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .map(drop)
    }

    pub fn text(&self, el: &str) -> Result<String> {
        Ok(self
            .call("GET", &format!("/element/{el}/text"), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn property(&self, el: &str, name: &str) -> Result<Value> {
        self.call("GET", &format!("/element/{el}/property/{name}"), None)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn exec(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs an async `script`: it must call `arguments[arguments.length - 1](result)`.
    pub fn exec_async(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The window as a PNG.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let b64 = self.call("GET", "/screenshot", None)?;
        let png = decode_base64(b64.as_str().unwrap_or_default());
        if png.starts_with(b"\x89PNG") {
            Ok(png)
        } else {
            Err("the WebDriver's screenshot is not a PNG".into())
        }
    }

    /// Ends the session (the app quits).
    pub fn quit(self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_chunked_bodies_decode() {
        assert_eq!(decode_base64("aGVsbG8="), b"hello");
        assert_eq!(decode_base64("aGk="), b"hi");
        assert_eq!(dechunk(b"5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n"), b"hello!!!");
        assert_eq!(dechunk(b"ff\r\nshort"), b"");
    }
}
