//! A tiny synchronous client for the kernel's `NETLINK_ROUTE` socket family.
//!
//! Netlink is a datagram socket protocol between user space and the kernel:
//! a request is a `nlmsghdr` header followed by a family-specific body
//! (`ifinfomsg` for links, `ifaddrmsg` for addresses, `rtmsg` for routes)
//! and a list of type-length-value attributes. The kernel answers a "dump"
//! request with many messages ended by `NLMSG_DONE`, and a change request
//! sent with `NLM_F_ACK` with one `NLMSG_ERROR` message whose code is 0
//! (an ACK) or `-errno`. A netlink socket belongs to the network namespace
//! of the thread that created it, for its whole life.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

const NLMSG_HDRLEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the human readable text of an extended ACK.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// How often a dump is retried when the kernel flags it as interrupted
/// (`NLM_F_DUMP_INTR`: the tables changed while they were being dumped).
const DUMP_RETRIES: usize = 5;

/// One `NETLINK_ROUTE` socket, bound to the network namespace of the thread
/// that opened it.
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace. `op` only
    /// names the operation in error messages.
    pub(crate) fn open(op: &str) -> Result<Self> {
        let sock_err = |syscall, source| Error::Socket {
            op: op.to_string(),
            syscall,
            source,
        };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| sock_err("socket(AF_NETLINK, NETLINK_ROUTE)", e))?;
        sock.bind_auto().map_err(|e| sock_err("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| sock_err("connect", e))?;
        // Best effort: ask for the kernel's explanation of errors
        // ("extended ACK") and for errors that do not echo our whole request.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends a dump request and collects every message of the answer.
    pub(crate) fn dump(&mut self, msg: RouteNetlinkMessage, op: &str) -> Result<Vec<RouteNetlinkMessage>> {
        let mut tries = 0;
        loop {
            let (msgs, interrupted) = self.request(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, op)?;
            tries += 1;
            if !interrupted || tries >= DUMP_RETRIES {
                return Ok(msgs);
            }
        }
    }

    /// Sends a request with `NLM_F_ACK` (plus `extra_flags`, e.g.
    /// `NLM_F_CREATE | NLM_F_EXCL`) and waits for the kernel's ACK. Returns
    /// the messages that came before the ACK (for `RTM_GET*` requests).
    pub(crate) fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags, op)
            .map(|(m, _)| m)
    }

    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &str) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf[..]);

        let sock_err = |syscall, source| Error::Socket {
            op: op.to_string(),
            syscall,
            source,
        };
        loop {
            match self.sock.send(&buf, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(sock_err("send", e)),
            }
        }

        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let data = match self.sock.recv_from_full() {
                Ok((data, _)) => data,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(sock_err("recv", e)),
            };
            let mut off = 0;
            while off + NLMSG_HDRLEN <= data.len() {
                let bytes = &data[off..];
                let len = u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
                if len < NLMSG_HDRLEN || len > bytes.len() {
                    return Err(Error::Decode {
                        op: op.to_string(),
                        detail: format!("message length {len} does not fit the {} bytes received", bytes.len()),
                    });
                }
                off += (len + 3) & !3;
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len]).map_err(|e| Error::Decode {
                        op: op.to_string(),
                        detail: lower(&e.to_string()),
                    })?;
                if msg.header.sequence_number != seq {
                    continue; // a late answer to an earlier request
                }
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            return Err(Error::Kernel {
                                op: op.to_string(),
                                errno: -done.code,
                                kernel_msg: None,
                            });
                        }
                        return Ok((out, interrupted));
                    }
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok((out, interrupted)),
                        Some(code) => {
                            return Err(Error::Kernel {
                                op: op.to_string(),
                                errno: -code.get(),
                                kernel_msg: extack_message(msg.header.flags, &e.header),
                            })
                        }
                    },
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if flags & (NLM_F_DUMP | NLM_F_ACK) == 0 {
                            return Ok((out, interrupted));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn lower(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Extracts the `NLMSGERR_ATTR_MSG` text from the payload of an
/// `NLMSG_ERROR` message (after the 4-byte code): the original request
/// (only its header when `NLM_F_CAPPED`), then attributes when
/// `NLM_F_ACK_TLVS` is set.
pub(crate) fn extack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(payload[0..4].try_into().ok()?) as usize
    };
    let mut off = (orig_len + 3) & !3;
    while off + 4 <= payload.len() {
        let nla_len = u16::from_ne_bytes(payload[off..off + 2].try_into().ok()?) as usize;
        let nla_type = u16::from_ne_bytes(payload[off + 2..off + 4].try_into().ok()?) & 0x3fff;
        if nla_len < 4 || off + nla_len > payload.len() {
            return None;
        }
        if nla_type == NLMSGERR_ATTR_MSG {
            let raw = &payload[off + 4..off + nla_len];
            let text = raw.split(|b| *b == 0).next().unwrap_or(raw);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        off += (nla_len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn extended_ack_text_is_found_after_a_capped_header() {
        let mut payload = vec![0u8; 16];
        payload[0..4].copy_from_slice(&40u32.to_ne_bytes()); // original length, ignored when capped
        payload.extend(nla(4, &7u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS, skipped
        payload.extend(nla(1, b"Cannot rename a running device\0"));
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).as_deref(),
            Some("Cannot rename a running device")
        );
        // without the TLV flag there is nothing to read
        assert_eq!(extack_message(NLM_F_CAPPED, &payload), None);
    }

    #[test]
    fn extended_ack_text_after_a_full_echoed_request() {
        let mut payload = vec![0u8; 20];
        payload[0..4].copy_from_slice(&20u32.to_ne_bytes());
        payload.extend(nla(1, b"hi\0"));
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &payload).as_deref(), Some("hi"));
    }

    #[test]
    fn truncated_attributes_do_not_panic() {
        let mut payload = vec![0u8; 16];
        payload.extend_from_slice(&[200, 0, 1, 0, b'x']);
        assert_eq!(extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload), None);
    }
}
