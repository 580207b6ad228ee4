//! A plugin's stderr: the last few KiB it wrote during the current call,
//! kept so that a trap can quote the panic message a Rust guest prints
//! before it aborts. Writes never fail and never grow the buffer past
//! [`StderrTail::CAPACITY`]: a plugin may print as much as it likes (a
//! stderr that filled up once would make `eprintln!` panic for ever
//! after).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The tail of what a plugin wrote to stderr; clones share it.
#[derive(Clone, Default)]
pub struct StderrTail {
    kept: Arc<Mutex<VecDeque<u8>>>,
}

impl StderrTail {
    /// Bytes kept.
    pub const CAPACITY: usize = 4 << 10;

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.extend(bytes);
            let excess = kept.len().saturating_sub(Self::CAPACITY);
            kept.drain(..excess);
        }
    }

    /// Forgets what was written (at the start of each call).
    pub fn clear(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.clear();
        }
    }

    /// What is kept, as text.
    pub fn contents(&self) -> String {
        let bytes: Vec<u8> = self
            .kept
            .lock()
            .map(|k| k.iter().copied().collect())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(Self::CAPACITY)
    }
}

impl Pollable for StderrTail {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_the_tail_and_never_fills_up() {
        let mut tail = StderrTail::default();
        for i in 0..10_000 {
            tail.write(Bytes::from(format!("line {i}\n"))).unwrap();
            assert!(tail.check_write().unwrap() > 0);
        }
        let text = tail.contents();
        assert!(text.len() <= StderrTail::CAPACITY);
        assert!(text.ends_with("line 9999\n"), "{text}");
        tail.clear();
        assert!(tail.contents().is_empty());
    }
}
