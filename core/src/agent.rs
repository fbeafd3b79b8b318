//! User-Agent → browser, OS and device class, and the bot check (CONTRACT §3).
//!
//! Parsing is woothee's; the bot list is isbot's (a port of the `isbot` npm list, which also
//! names headless and automated browsers). The UA string is used here and never kept.

use std::sync::OnceLock;

/// Desktop, mobile or tablet (the `device` dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
        }
    }

    pub fn parse(s: &str) -> Option<Device> {
        match s {
            "desktop" => Some(Device::Desktop),
            "mobile" => Some(Device::Mobile),
            "tablet" => Some(Device::Tablet),
            _ => None,
        }
    }

    /// The class of a screen of `width` CSS pixels, used when the UA does not tell.
    pub fn from_screen(width: u32) -> Device {
        match width {
            0..=575 => Device::Mobile,
            576..=991 => Device::Tablet,
            _ => Device::Desktop,
        }
    }
}

/// What is kept of a User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    pub device: Device,
}

fn bots() -> &'static isbot::Bots {
    static BOTS: OnceLock<isbot::Bots> = OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

/// Whether the UA is a crawler, a bot, or a headless / automated browser.
pub fn is_bot(ua: &str) -> bool {
    let ua = ua.trim();
    ua.is_empty() || bots().is_bot(ua)
}

/// What the User-Agent alone says: browser, OS and, when it is clear, the device class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub browser: String,
    pub os: String,
    /// `None` when the UA does not tell (the screen width decides then).
    pub device: Option<Device>,
}

impl Parsed {
    /// The agent, with `screen` (the page's screen width) deciding a vague device class.
    pub fn with_screen(&self, screen: Option<u32>) -> Agent {
        Agent {
            browser: self.browser.clone(),
            os: self.os.clone(),
            device: self
                .device
                .or_else(|| screen.map(Device::from_screen))
                .unwrap_or(Device::Desktop),
        }
    }
}

/// Parses a User-Agent, or `None` when it is a bot (see [`is_bot`]). The result depends on
/// the UA alone, so callers may cache it.
pub fn parse(ua: &str) -> Option<Parsed> {
    if is_bot(ua) {
        return None;
    }
    let parsed = woothee::parser::Parser::new().parse(ua);
    let (browser, os, category) = match &parsed {
        Some(r) if r.category != "crawler" => (r.name, r.os, r.category),
        Some(_) => return None,
        None => ("UNKNOWN", "UNKNOWN", "UNKNOWN"),
    };
    let lower = ua.to_ascii_lowercase();
    let tablet = lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"));
    let device = if tablet {
        Some(Device::Tablet)
    } else {
        match category {
            "pc" => Some(Device::Desktop),
            "smartphone" | "mobilephone" => Some(Device::Mobile),
            _ => None,
        }
    };
    Some(Parsed {
        browser: tidy(browser),
        os: tidy(os),
        device,
    })
}

/// Classifies a User-Agent, or `None` when it is a bot (see [`is_bot`]).
/// `screen` (the page's screen width) decides the device class when the UA is vague.
pub fn classify(ua: &str, screen: Option<u32>) -> Option<Agent> {
    parse(ua).map(|p| p.with_screen(screen))
}

fn tidy(name: &str) -> String {
    match name {
        "UNKNOWN" | "" => "Unknown".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";

    #[test]
    fn browsers_and_devices() {
        let a = classify(CHROME_WIN, None).expect("human");
        assert_eq!((a.browser.as_str(), a.device), ("Chrome", Device::Desktop));
        assert!(a.os.starts_with("Windows"), "{}", a.os);
        let a = classify(SAFARI_IPHONE, None).expect("human");
        assert_eq!(
            (a.browser.as_str(), a.os.as_str(), a.device),
            ("Safari", "iPhone", Device::Mobile)
        );
        assert_eq!(classify(IPAD, None).expect("human").device, Device::Tablet);
        let a = classify(FIREFOX_LINUX, None).expect("human");
        assert_eq!((a.browser.as_str(), a.os.as_str()), ("Firefox", "Linux"));
    }

    #[test]
    fn bots_and_automation() {
        for ua in [
            "",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.32.3",
        ] {
            assert!(classify(ua, None).is_none(), "{ua}");
        }
    }

    #[test]
    fn vague_agents_take_the_screen() {
        let p = parse("SomeBrowser/1.0").expect("human");
        assert_eq!(p.device, None);
        assert_eq!(p.with_screen(Some(390)).device, Device::Mobile);
        assert_eq!(p.with_screen(None).device, Device::Desktop);
        assert_eq!(
            parse(CHROME_WIN)
                .expect("human")
                .with_screen(Some(390))
                .device,
            Device::Desktop
        );
    }

    #[test]
    fn screen_decides_vague_agents() {
        assert_eq!(Device::from_screen(390), Device::Mobile);
        assert_eq!(Device::from_screen(800), Device::Tablet);
        assert_eq!(Device::from_screen(1440), Device::Desktop);
    }
}
