//! BPF programs (cgroup connect/sendmsg/recvmsg, sockops, cgroup_skb), their build, the aya loader and typed map wrappers. Lands with the kernel datapath.
//!
//! Empty until that work lands: this crate exists so the workspace has its final shape.
