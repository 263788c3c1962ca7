//! The default platform name: this host's `ID-VERSION_ID` from os-release
//! (`debian-12`, `ubuntu-24.04`), as builder-web names platforms.

use anyhow::Context;
use uk_names::PlatformName;

pub fn host_platform() -> anyhow::Result<PlatformName> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .context("reading /etc/os-release to name the host platform; pass --platform")?;
    from_os_release(&text)
}

fn from_os_release(text: &str) -> anyhow::Result<PlatformName> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    let id = field("ID").context("os-release has no ID; pass --platform")?;
    let name = match field("VERSION_ID") {
        Some(v) if !v.is_empty() => format!("{id}-{v}"),
        _ => id,
    };
    name.parse()
        .with_context(|| format!("os-release names the platform {name:?}; pass --platform"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn debian_and_ubuntu() {
        let d =
            super::from_os_release("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n")
                .unwrap();
        assert_eq!(d.as_str(), "debian-12");
        let u = super::from_os_release("ID=ubuntu\nVERSION_ID=\"24.04\"\nID_LIKE=debian\n").unwrap();
        assert_eq!(u.as_str(), "ubuntu-24.04");
        assert_eq!(super::from_os_release("ID=arch\n").unwrap().as_str(), "arch");
        assert!(super::from_os_release("NAME=x\n").is_err());
    }
}
