//! The HTTP server: accepts connections up to a limit and serves each with
//! HTTP/1.1, closing the ones that do not send a request in time.
//!
//! A client that opens connections and sends nothing (or a byte a minute)
//! would otherwise hold them for as long as it likes. Three bounds stop it:
//! the connection limit (further connections wait unaccepted in the listen
//! queue), the header timeout (from the moment a connection opens or its
//! previous answer is written until the next request's headers are in: so
//! both slow headers and idle keep-alive connections), and the body timeout,
//! which the API applies while it reads a body (a 408 answer).

use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerLimits;

/// Serves `router` on `listener` until `shutdown`, then lets each
/// connection finish the request it is in and returns when all are closed.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        // A free place first, then a connection: the ones over the limit
        // stay in the kernel's queue rather than open and unserved here.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => { log_end(result); return; }
                _ = stop.cancelled() => {}
            }
            // Stopping: an idle connection closes now, a busy one after
            // its answer.
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn log_end(result: Result<(), hyper::Error>) {
    match result {
        Ok(()) => {}
        // Expected endings: a timeout, a client that went away.
        Err(e) if e.is_timeout() || e.is_incomplete_message() || e.is_closed() => {
            tracing::debug!(error = %e, "Connection closed.");
        }
        Err(e) => tracing::debug!(error = %e, "Connection ended with an error."),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    use super::*;

    const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

    /// A server with a 10 s header timeout and room for `max_connections`.
    async fn server(
        max_connections: usize,
    ) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = ServerLimits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: Duration::from_secs(10),
            max_connections,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_http(listener, router, limits, stop.clone()));
        (addr, stop, task)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads one whole answer to `GET /` (its body is `ok`).
    async fn read_answer(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        while !seen.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before the answer: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: drover\r\n\r\n";

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
        let (addr, _stop, _task) = server(8).await;
        let mut idle = TcpStream::connect(&addr).await.unwrap();
        let opened = Instant::now();
        let said = read_to_close(&mut idle).await;
        assert_eq!(opened.elapsed(), HEADER_TIMEOUT, "closed after: {said:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn headers_sent_a_byte_at_a_time_do_not_buy_more_time() {
        let (addr, _stop, _task) = server(8).await;
        let mut slow = TcpStream::connect(&addr).await.unwrap();
        let opened = Instant::now();
        // One byte a second: every byte is progress, the headers never end
        // in time.
        let mut closed = false;
        for byte in GET.iter().take(20) {
            if slow.write_all(&[*byte]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !closed {
            read_to_close(&mut slow).await;
        }
        assert!(
            opened.elapsed() <= HEADER_TIMEOUT + Duration::from_secs(1),
            "open for {:?}",
            opened.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
        let (addr, _stop, _task) = server(8).await;
        let mut client = TcpStream::connect(&addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        let answer = read_answer(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Kept alive for a next request...
        tokio::time::sleep(HEADER_TIMEOUT / 2).await;
        client.write_all(GET).await.unwrap();
        let answered = Instant::now();
        assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
        // ...but not longer than the timeout without one.
        read_to_close(&mut client).await;
        assert_eq!(answered.elapsed(), HEADER_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_over_the_limit_wait_until_one_closes() {
        let (addr, _stop, _task) = server(1).await;
        let mut holder = TcpStream::connect(&addr).await.unwrap();
        let opened = Instant::now();
        let mut waiting = TcpStream::connect(&addr).await.unwrap();
        waiting.write_all(GET).await.unwrap();
        // The one place is taken: no answer while the holder stays.
        assert!(
            tokio::time::timeout(HEADER_TIMEOUT / 2, read_answer(&mut waiting))
                .await
                .is_err(),
            "answered over the limit"
        );
        // The holder's time runs out, the waiting request is served.
        let answer = read_answer(&mut waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(opened.elapsed(), HEADER_TIMEOUT);
        assert_eq!(read_to_close(&mut holder).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_closes_idle_connections_and_returns() {
        let (addr, stop, task) = server(8).await;
        let mut client = TcpStream::connect(&addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        read_answer(&mut client).await;
        let stopped = Instant::now();
        stop.cancel();
        task.await.unwrap();
        assert_eq!(read_to_close(&mut client).await, "");
        assert!(stopped.elapsed() < Duration::from_secs(1));
        assert!(TcpStream::connect(&addr).await.is_err(), "still listening");
    }
}
