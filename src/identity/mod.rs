//! Who may upload: the identities signpost knows, and the rules between them. Pure: the web
//! layer resolves a request to an [`Identity`], the rest of the code asks it questions.
//!
//! - behind an authenticating proxy, a header names the user ([`client`] decides which peers
//!   are believed);
//! - API tokens name scripts and host applications ([`tokens`]);
//! - upload links let anyone who holds one upload as their owner, a budget of times
//!   ([`links`]);
//! - anonymous clients, when allowed, are known by their address.

pub mod client;
pub mod csrf;
pub mod links;
pub mod tokens;

use std::net::IpAddr;

/// The owner of anonymous uploads.
pub const ANONYMOUS: &str = "anonymous";
/// Longest owner name signed into a form.
pub const MAX_OWNER: usize = 128;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Named by the authenticating proxy's header.
    User(String),
    /// An API token's name; a delegate token may sign for other owners.
    Token { name: String, delegate: bool },
    /// A session opened with an upload link: it may upload as the link's owner, nothing more.
    Link { id: String, owner: String },
    /// No identity, where that is allowed: known by the client's address.
    Anonymous(IpAddr),
}

impl Identity {
    /// The owner its uploads are signed for.
    pub fn owner(&self) -> &str {
        match self {
            Self::User(name) | Self::Token { name, .. } => name,
            Self::Link { owner, .. } => owner,
            Self::Anonymous(_) => ANONYMOUS,
        }
    }

    /// The key rate limits and quotas count under: the name, or the address.
    pub fn counted_as(&self) -> String {
        match self {
            Self::Anonymous(ip) => format!("address {ip}"),
            Self::Link { id, .. } => format!("link {id}"),
            other => format!("user {}", other.owner()),
        }
    }

    /// A person or program with its own name: it may see and delete what it owns. A link
    /// session only uploads; anonymous clients own nothing they could prove.
    pub fn is_named(&self) -> bool {
        matches!(self, Self::User(_) | Self::Token { .. })
    }

    pub fn is_admin(&self, admins: &[String]) -> bool {
        self.is_named() && admins.iter().any(|a| a == self.owner())
    }

    /// Whether it may delete (or see, with `--gallery own`) an upload of `owner`.
    pub fn may_manage(&self, owner: &str, admins: &[String]) -> bool {
        self.is_admin(admins) || (self.is_named() && self.owner() == owner)
    }
}

/// Whether a name can be an owner: printable, without line breaks, not too long. Names come
/// from a proxy's header, a token's name or a link's owner.
pub fn valid_owner(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() <= MAX_OWNER
        && !name.chars().any(char::is_control)
        && name.trim() == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_manage_what() {
        let admins = vec!["root".to_owned()];
        let alice = Identity::User("alice".into());
        let bob = Identity::Token {
            name: "bob".into(),
            delegate: false,
        };
        let root = Identity::User("root".into());
        let link = Identity::Link {
            id: "l1".into(),
            owner: "alice".into(),
        };
        let anon = Identity::Anonymous("10.0.0.1".parse().unwrap());
        assert!(alice.may_manage("alice", &admins));
        assert!(!alice.may_manage("bob", &admins));
        assert!(bob.may_manage("bob", &admins));
        assert!(root.may_manage("alice", &admins) && root.may_manage(ANONYMOUS, &admins));
        assert!(!link.may_manage("alice", &admins), "a link only uploads");
        assert!(!anon.may_manage(ANONYMOUS, &admins));
        assert_eq!(link.owner(), "alice");
        assert_eq!(anon.owner(), ANONYMOUS);
        assert!(!Identity::User("anonymous".into()).is_admin(&[]));
    }

    #[test]
    fn owner_names() {
        assert!(valid_owner("alice@example.com"));
        assert!(valid_owner("Zoë"));
        for bad in ["", " ", "a\nb", " alice", "x".repeat(200).as_str()] {
            assert!(!valid_owner(bad), "{bad:?}");
        }
    }
}
