//! The runtime that the PostgreSQL and S3 clients run on. Both clients are
//! async, while their callers are blocking: the store and the queries are
//! called from the server's blocking pool and from the synchronous admin
//! commands. Each call runs its future here with [`block_on`] and waits.
//!
//! One runtime per process, made on first use and never dropped: a tokio
//! runtime may not be dropped inside another one's async context, and the
//! connections and pooled HTTP clients that live on it are shared by every
//! handle in the process (tests start several servers in one process).

use std::future::Future;
use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The I/O runtime (two workers: it only waits on sockets).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ukrepo-io")
            .enable_all()
            .build()
            .expect("starting the I/O runtime")
    })
}

/// Runs `fut` on the I/O runtime and waits for it. Call it from a blocking
/// thread (`spawn_blocking`, an admin command), never from async code.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    runtime().block_on(fut)
}

/// Runs `fut` on the I/O runtime and awaits it from any runtime.
pub async fn run<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime().spawn(fut).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
