//! Just enough HTTP/1.1 for the load generator and the stub API: one message head and a
//! `Content-Length` or chunked body, read from a buffered keep-alive stream.

use std::io::{self, BufRead};

/// One HTTP/1.1 message head (request or response) and its body.
#[derive(Debug, Default)]
pub struct Message {
    /// The first line (`POST /TraceSegments HTTP/1.1`, `HTTP/1.1 200 OK`).
    pub start: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked (never decompressed).
    pub body: Vec<u8>,
}

impl Message {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response (0 when the first line is not a status line).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

fn line(reader: &mut impl BufRead, out: &mut String) -> io::Result<usize> {
    out.clear();
    let n = reader.read_line(out)?;
    while out.ends_with('\n') || out.ends_with('\r') {
        out.pop();
    }
    Ok(n)
}

/// Reads one message into `msg` (its buffers reused). `Ok(false)` at a clean end of
/// stream before any byte of a message.
pub fn read_message(reader: &mut impl BufRead, msg: &mut Message) -> io::Result<bool> {
    let mut text = String::new();
    if line(reader, &mut text)? == 0 {
        return Ok(false);
    }
    msg.start = std::mem::take(&mut text);
    msg.headers.clear();
    msg.body.clear();
    loop {
        if line(reader, &mut text)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            msg.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let chunked = msg
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            line(reader, &mut text)?;
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while line(reader, &mut text)? > 0 && !text.is_empty() {}
                break;
            }
            let start = msg.body.len();
            msg.body.resize(start + size, 0);
            reader.read_exact(&mut msg.body[start..])?;
            line(reader, &mut text)?;
        }
    } else if let Some(len) = msg.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        msg.body.resize(len, 0);
        reader.read_exact(&mut msg.body)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_and_chunked_bodies_back_to_back() {
        let wire = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n";
        let mut reader = io::BufReader::new(&wire[..]);
        let mut msg = Message::default();
        assert!(read_message(&mut reader, &mut msg).unwrap());
        assert_eq!(
            (msg.start.as_str(), msg.body.as_slice()),
            ("POST /a HTTP/1.1", &b"abc"[..])
        );
        assert!(read_message(&mut reader, &mut msg).unwrap());
        assert_eq!((msg.status(), msg.body.as_slice()), (200, &b"xyz"[..]));
        assert!(!read_message(&mut reader, &mut msg).unwrap());
    }
}
