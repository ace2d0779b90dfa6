//! The board's hardware and system, as `doctor` sees them: the display
//! (DRM), input devices, fonts, the GPIO chip and the unit. Linux only;
//! each probe reads `/sys`, `/proc` or `/dev` and says what it found.

use std::path::Path;

use super::Line;

/// True if this process may read and write `path`.
fn usable(path: &Path) -> bool {
    crate::doctor::access(path, libc::R_OK | libc::W_OK)
}

/// A DRM card with a connector whose status is `connected`, usable here.
pub fn display() -> Line {
    let mut connected = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/class/drm") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Connectors are named cardN-TYPE-M.
            let Some((card, _)) = name.split_once('-') else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            if status.trim() == "connected" {
                connected.push((card.to_owned(), name));
            }
        }
    }
    connected.sort();
    let Some((card, connector)) = connected.first() else {
        return Line::failed(
            "display",
            "no DRM connector with a display connected",
            "plug the display in (DSI ribbon or HDMI) and check `dtoverlay=vc4-kms-v3d` in /boot/firmware/config.txt",
        );
    };
    let dev = Path::new("/dev/dri").join(card);
    if usable(&dev) {
        Line::ok(
            "display",
            format!("{connector} connected, {} usable", dev.display()),
        )
    } else {
        Line::failed(
            "display",
            format!("{connector} connected, but {} is not usable by this user", dev.display()),
            "the kiosk's user needs the `video` and `render` groups (the package's sysusers file adds them); run doctor as that user: `sudo -u huddle-kiosk huddle-kiosk doctor`",
        )
    }
}

/// One input device of /proc/bus/input/devices.
struct Device {
    name: String,
    handlers: String,
    props: u64,
    ev: u64,
}

fn devices() -> Vec<Device> {
    let text = std::fs::read_to_string("/proc/bus/input/devices").unwrap_or_default();
    let hex =
        |v: &str| u64::from_str_radix(v.split_whitespace().last().unwrap_or("0"), 16).unwrap_or(0);
    text.split("\n\n")
        .map(|block| {
            let mut d = Device {
                name: String::new(),
                handlers: String::new(),
                props: 0,
                ev: 0,
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("N: Name=") {
                    d.name = v.trim_matches('"').to_owned();
                } else if let Some(v) = line.strip_prefix("H: Handlers=") {
                    d.handlers = v.to_owned();
                } else if let Some(v) = line.strip_prefix("B: PROP=") {
                    d.props = hex(v);
                } else if let Some(v) = line.strip_prefix("B: EV=") {
                    d.ev = hex(v);
                }
            }
            d
        })
        .filter(|d| !d.name.is_empty())
        .collect()
}

/// A touch screen (INPUT_PROP_DIRECT with absolute axes) and, when
/// badges come from a keyboard-wedge reader, a keyboard device.
pub fn input(wedge: bool) -> Vec<Line> {
    const PROP_DIRECT: u64 = 1 << 1;
    const EV_KEY: u64 = 1 << 1;
    const EV_ABS: u64 = 1 << 3;
    let all = devices();
    let touch: Vec<&str> = all
        .iter()
        .filter(|d| d.props & PROP_DIRECT != 0 && d.ev & EV_ABS != 0)
        .map(|d| d.name.as_str())
        .collect();
    let keyboards: Vec<&str> = all
        .iter()
        .filter(|d| d.ev & EV_KEY != 0 && d.handlers.split_whitespace().any(|h| h == "kbd"))
        .map(|d| d.name.as_str())
        .collect();
    let mut lines = vec![if touch.is_empty() {
        Line::failed(
            "input.touch",
            "no touch screen among the input devices",
            "check the touch screen's cable (its USB lead for an HDMI screen) and `libinput list-devices`",
        )
    } else {
        Line::ok("input.touch", touch.join(", "))
    }];
    lines.push(match (keyboards.is_empty(), wedge) {
        (false, _) => Line::ok("input.keyboard", keyboards.join(", ")),
        (true, true) => Line::failed(
            "input.keyboard",
            "badge.source is keyboard, but no keyboard device (a wedge reader is one)",
            "plug the USB badge reader in; `libinput list-devices` should list it",
        ),
        (true, false) => Line::ok(
            "input.keyboard",
            "none (not needed: badges do not come from a wedge reader)",
        ),
    });
    lines
}

/// Font files where fontconfig looks by default.
pub fn fonts() -> Line {
    fn count(dir: &Path, depth: u32) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() && depth < 6 {
                    count(&p, depth + 1)
                } else {
                    let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
                    usize::from(matches!(ext, "ttf" | "otf" | "ttc" | "TTF" | "OTF"))
                }
            })
            .sum()
    }
    let n: usize = ["/usr/share/fonts", "/usr/local/share/fonts"]
        .iter()
        .map(|d| count(Path::new(d), 0))
        .sum();
    if n == 0 {
        Line::failed(
            "fonts",
            "no font file under /usr/share/fonts or /usr/local/share/fonts",
            "apt-get install fonts-dejavu-core",
        )
    } else {
        Line::ok("fonts", format!("{n} font files"))
    }
}

/// The GPIO chip, when badges come from a Wiegand reader.
pub fn gpio(needed: bool) -> Line {
    if !needed {
        return Line::ok("gpio", "not used (badge.source is not gpio)");
    }
    if !cfg!(feature = "gpio") {
        return Line::failed(
            "gpio",
            "badge.source is gpio, but this huddle-kiosk was built without the `gpio` feature",
            "install the board's package (built with `gpio`), or build with `cargo build --release --features gpio`",
        );
    }
    let mut chips: Vec<_> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("gpiochip"))
        })
        .collect();
    chips.sort();
    match chips.iter().find(|c| usable(c)) {
        Some(c) => Line::ok("gpio", format!("{} usable", c.display())),
        None if chips.is_empty() => Line::failed("gpio", "no /dev/gpiochip*", "this is not a Pi, or its GPIO driver is not loaded"),
        None => Line::failed(
            "gpio",
            "no /dev/gpiochip* usable by this user",
            "the kiosk's user needs the `gpio` group; run doctor as that user: `sudo -u huddle-kiosk huddle-kiosk doctor`",
        ),
    }
}

/// The unit's state from systemd.
pub fn unit(name: &str) -> Line {
    match crate::doctor::systemctl(&["is-active", name]) {
        Ok(state) => {
            if state == "active" {
                Line::ok("unit", format!("{name} is active"))
            } else {
                Line::failed(
                    "unit",
                    format!(
                        "{name} is {}",
                        if state.is_empty() { "unknown" } else { &state }
                    ),
                    format!("`systemctl enable --now {name}`; its log: `journalctl -u {name} -b`"),
                )
            }
        }
        Err(e) => Line::failed(
            "unit",
            format!("cannot run systemctl: {e}"),
            "doctor's unit check needs systemd",
        ),
    }
}
