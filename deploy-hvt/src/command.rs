//! External commands (`restart = "…"`, `[health] command`): `sh -c CMD` in
//! a process group of its own, given until a deadline. At the deadline the
//! whole group is killed (SIGKILL; a hung `systemctl` and whatever it started
//! in its group) and reaped, so `deploy-hvt` never waits for ever while it
//! holds the unikernel's lock. Waiting uses a pidfd, not a polling loop.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};

/// How a command ended.
#[derive(Debug)]
pub enum Ran {
    Exited(ExitStatus),
    /// Killed (with its process group) at the deadline.
    TimedOut,
}

/// Waits until the process behind `pidfd` exits or `deadline` passes;
/// whether it exited.
pub fn wait_pidfd(pidfd: impl AsFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            // No pidfd support: treat as "still running" until the deadline.
            Err(_) => {
                std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
                if Instant::now() >= deadline {
                    return false;
                }
            }
        }
    }
}

/// Runs `cmd` with `sh -c` until `deadline`; its stdout goes to `stdout`.
pub fn run(cmd: &str, stdout: Stdio, deadline: Instant) -> std::io::Result<Ran> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0);
    // SAFETY: one async-signal-safe system call between fork and exec.
    unsafe {
        // Nothing we inherited (a script's lock) stays open in what it starts.
        command.pre_exec(|| {
            libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    let exited = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => wait_pidfd(&fd, deadline),
        Err(_) => loop {
            if child.try_wait()?.is_some() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        },
    };
    if exited {
        return Ok(Ran::Exited(child.wait()?));
    }
    // Not reaped yet, so the group (which it leads) is still ours to kill.
    let _ = kill_process_group(pid, Signal::KILL);
    child.wait()?;
    Ok(Ran::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_hung_command_and_its_group_are_killed_at_the_deadline() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("pid");
        let start = Instant::now();
        let ran = run(
            &format!("sleep 600 & echo $! > {}; wait", pidfile.display()),
            Stdio::null(),
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap();
        assert!(matches!(ran, Ran::TimedOut), "{ran:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let sleeper: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The background sleep was in the group: killed too (gone, or a
        // zombie until init reaps it). SIGKILL takes effect asynchronously.
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next());
            if matches!(state, None | Some(Some('Z'))) {
                break;
            }
            assert!(Instant::now() < end, "the group's sleep survived: {stat}");
            std::thread::sleep(Duration::from_millis(10));
        }
        match run("exit 3", Stdio::null(), Instant::now() + Duration::from_secs(10)).unwrap() {
            Ran::Exited(s) => assert_eq!(s.code(), Some(3)),
            other => panic!("{other:?}"),
        }
    }
}
