//! Client addresses as the server counts them: the key a peer is limited
//! under (an IPv4 address; an IPv6 /64, since one host usually owns a whole
//! /64), and the table of open connections, capped in total and per key.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The key `ip` is counted under.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections, in total and per peer key.
pub struct ConnTable {
    max_total: usize,
    max_per_peer: usize,
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only keys with open connections (bounded by `max_total`).
    per_peer: HashMap<IpAddr, usize>,
}

/// One open connection; closing it (drop) frees its place.
pub struct ConnSlot {
    table: Arc<ConnTable>,
    key: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.table.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_peer.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.key);
            }
        }
    }
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max_total,
            max_per_peer,
            inner: Mutex::new(Counts::default()),
        })
    }

    /// A place for a new connection from `ip`, or `None` when a cap is reached.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let key = peer_key(ip);
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.per_peer.get(&key).copied().unwrap_or(0);
        if c.total >= self.max_total || n >= self.max_per_peer {
            return None;
        }
        c.total += 1;
        c.per_peer.insert(key, n + 1);
        Some(ConnSlot {
            table: self.clone(),
            key,
        })
    }

    pub fn open_count(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_peer_and_frees_on_drop() {
        let t = ConnTable::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = t.open(a).unwrap();
        let _a2 = t.open(a).unwrap();
        assert!(t.open(a).is_none(), "per-peer cap");
        let _b1 = t.open(b).unwrap();
        assert!(t.open(b).is_none(), "total cap");
        drop(a1);
        let _b2 = t.open(b).unwrap();
        assert_eq!(t.open_count(), 3);
    }

    #[test]
    fn ipv6_keys_are_64s_and_mapped_v4_is_v4() {
        assert_eq!(
            peer_key("2001:db8::1:2:3:4".parse().unwrap()),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            peer_key("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
