//! A loopback HTTP/1.1 server for the download tests: each path is served with a chosen
//! behaviour (whole, corrupted, cut short, stalled), so that the real client meets real
//! sockets. One thread per connection, so a stalled one holds up no other.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How a path is answered.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with the bytes and their `Content-Length`.
    Whole(Vec<u8>),
    /// `200` announcing the bytes' full length, then only the first `n`, then the connection
    /// is closed.
    CutShort(Vec<u8>, usize),
    /// `200` announcing `announced` bytes and sending the bytes.
    Announce(Vec<u8>, u64),
    /// The request is read and never answered.
    Stall,
    /// Headers and the first `n` bytes, then nothing more (the connection stays open).
    StallAfter(Vec<u8>, usize),
}

/// A running server; dropping it (or [`Server::stop`]) shuts it down.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `routes` (path, e.g. `/mnist/a.gz`, to reply) on 127.0.0.1, on a free port.
    pub fn start(routes: Vec<(String, Reply)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let routes: Arc<HashMap<String, Reply>> = Arc::new(routes.into_iter().collect());
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (routes, stop, requests) = (routes.clone(), stop2.clone(), requests2.clone());
                std::thread::spawn(move || answer(stream, &routes, &stop, &requests));
            }
        });
        Server {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The base URL of `folder` on this server, ending with `/`.
    pub fn url(&self, folder: &str) -> String {
        format!("http://{}/{folder}/", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes the listening socket: the port then refuses connections.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Reads the request head; returns its path.
fn read_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_owned();
    line.split_whitespace().nth(1).map(str::to_owned)
}

fn headers(stream: &mut TcpStream, len: u64) {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
}

/// Holds the connection open, silent, until the server stops.
fn hold(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answer(
    mut stream: TcpStream,
    routes: &HashMap<String, Reply>,
    stop: &AtomicBool,
    requests: &AtomicUsize,
) {
    let Some(path) = read_path(&mut stream) else {
        return;
    };
    requests.fetch_add(1, Ordering::SeqCst);
    match routes.get(&path) {
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Some(Reply::Whole(bytes)) => {
            headers(&mut stream, bytes.len() as u64);
            let _ = stream.write_all(bytes);
        }
        Some(Reply::CutShort(bytes, n)) => {
            headers(&mut stream, bytes.len() as u64);
            let _ = stream.write_all(&bytes[..*n]);
        }
        Some(Reply::Announce(bytes, announced)) => {
            headers(&mut stream, *announced);
            let _ = stream.write_all(bytes);
        }
        Some(Reply::Stall) => hold(stop),
        Some(Reply::StallAfter(bytes, n)) => {
            headers(&mut stream, bytes.len() as u64);
            let _ = stream.write_all(&bytes[..*n]);
            let _ = stream.flush();
            hold(stop);
        }
    }
    let _ = stream.flush();
}
