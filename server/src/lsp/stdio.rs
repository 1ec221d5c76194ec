//! The editor's pipes, read and written on the runtime's reactor.
//!
//! tokio's `stdin()` and `stdout()` hand every read and every write to a thread of the
//! blocking pool, since a terminal or a file cannot be polled: each message then wakes that
//! thread, and its completion wakes a worker again. On this project's two-core machine those
//! thread switches were most of what a small request cost (a `hover` that finds nothing: about
//! ten context switches and 140 µs of CPU). An editor starts a server on pipes (Python,
//! Helix) or on a socket pair (libuv: VS Code, Neovim), and both can be polled; so when stdin
//! and stdout are one of those they are put in non-blocking mode and registered with the
//! reactor, and a message costs one wake-up. Anything else (a terminal, a file) keeps tokio's
//! handles.
//!
//! Non-blocking mode belongs to the open file description, which another process may share
//! (a wrapper script that started the server, say), so [`Restore`] puts each descriptor back
//! in blocking mode when the server stops. Stdout stays as it was when stderr is the same
//! pipe (`2>&1`): log lines written to a non-blocking stderr could be lost.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tokio::net::UnixStream;

/// What the server reads the editor's messages from.
pub enum Input {
    Pipe(pipe::Receiver),
    Socket(UnixStream),
    Blocking(tokio::io::Stdin),
}

/// What the server writes its messages to.
pub enum Output {
    Pipe(pipe::Sender),
    Socket(UnixStream),
    Blocking(tokio::io::Stdout),
}

/// Puts back in blocking mode, when dropped, the descriptors [`open`] made non-blocking
/// (those that were blocking before).
#[derive(Default)]
pub struct Restore {
    stdin: bool,
    stdout: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.stdin {
            blocking(io::stdin().as_fd());
        }
        if self.stdout {
            blocking(io::stdout().as_fd());
        }
    }
}

/// Stdin and stdout for the server, polled by the reactor where they can be. Must be called
/// on the runtime (the pipes register with its reactor).
pub fn open() -> (Input, Output, Restore) {
    let mut restore = Restore {
        stdin: !non_blocking(io::stdin().as_fd()),
        stdout: !non_blocking(io::stdout().as_fd()),
    };
    // Stdout stays blocking when stderr is the same file; then so must stdin if it is that
    // file too (one socket for all three, inetd-style): the mode is the description's.
    let stdout_polls = !same_file(io::stdout().as_fd(), io::stderr().as_fd());
    let stdin_polls = stdout_polls || !same_file(io::stdin().as_fd(), io::stdout().as_fd());
    let input = match kind(io::stdin().as_fd()) {
        _ if !stdin_polls => Err(io::ErrorKind::Unsupported.into()),
        Kind::Pipe => dup(io::stdin().as_fd())
            .and_then(pipe::Receiver::from_owned_fd)
            .map(Input::Pipe),
        Kind::Socket => socket(io::stdin().as_fd()).map(Input::Socket),
        Kind::Other => Err(io::ErrorKind::Unsupported.into()),
    }
    .unwrap_or_else(|_: io::Error| {
        // tokio's blocking reads need a blocking descriptor, whatever step failed.
        if std::mem::take(&mut restore.stdin) {
            blocking(io::stdin().as_fd());
        }
        Input::Blocking(tokio::io::stdin())
    });
    let output = match kind(io::stdout().as_fd()) {
        _ if !stdout_polls => Err(io::ErrorKind::Unsupported.into()),
        Kind::Pipe => dup(io::stdout().as_fd())
            .and_then(pipe::Sender::from_owned_fd)
            .map(Output::Pipe),
        Kind::Socket => socket(io::stdout().as_fd()).map(Output::Socket),
        Kind::Other => Err(io::ErrorKind::Unsupported.into()),
    }
    .unwrap_or_else(|_: io::Error| {
        if std::mem::take(&mut restore.stdout) {
            blocking(io::stdout().as_fd());
        }
        Output::Blocking(tokio::io::stdout())
    });
    (input, output, restore)
}

enum Kind {
    Pipe,
    Socket,
    Other,
}

fn kind(fd: BorrowedFd<'_>) -> Kind {
    match metadata(fd).map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => Kind::Pipe,
        Ok(t) if t.is_socket() => Kind::Socket,
        _ => Kind::Other,
    }
}

fn metadata(fd: BorrowedFd<'_>) -> io::Result<std::fs::Metadata> {
    File::from(dup(fd)?).metadata()
}

fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (metadata(a), metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A descriptor of our own for `fd`'s file description, so that dropping it never closes
/// the process's stdin or stdout.
fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

fn socket(fd: BorrowedFd<'_>) -> io::Result<UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(dup(fd)?);
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

fn non_blocking(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|f| f.contains(rustix::fs::OFlags::NONBLOCK))
}

fn blocking(fd: BorrowedFd<'_>) {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    if let Ok(flags) = fcntl_getfl(fd) {
        let _ = fcntl_setfl(fd, flags - OFlags::NONBLOCK);
    }
}

impl AsyncRead for Input {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Input::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            Input::Socket(s) => Pin::new(s).poll_read(cx, buf),
            Input::Blocking(b) => Pin::new(b).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Output {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Output::Pipe(p) => Pin::new(p).poll_write(cx, buf),
            Output::Socket(s) => Pin::new(s).poll_write(cx, buf),
            Output::Blocking(b) => Pin::new(b).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Output::Pipe(p) => Pin::new(p).poll_flush(cx),
            Output::Socket(s) => Pin::new(s).poll_flush(cx),
            Output::Blocking(b) => Pin::new(b).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Output::Pipe(p) => Pin::new(p).poll_shutdown(cx),
            // Our descriptor only: never shut the editor's socket down for both directions.
            Output::Socket(_) => Poll::Ready(Ok(())),
            Output::Blocking(b) => Pin::new(b).poll_shutdown(cx),
        }
    }
}
