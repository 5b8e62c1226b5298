//! Time zone of a phone number, for calling windows in the callee's local time.
//!
//! `phonenumber` tells the region (ISO 3166 code) but not the zone. Most
//! regions have one zone; for the few that span several (US, CA, RU, AU, BR,
//! MX, ID, KZ) the national number decides where we know it (North American
//! area codes below), otherwise the zone is a *guess* and is flagged so, and
//! the scheduler can be told to use the narrowest window of the region.
use chrono_tz::Tz;

pub use waihu_core::TzSource;

/// The zone for a region code (and, for NANP, the national number).
pub fn zone_for(region: &str, national: &str) -> Option<(Tz, TzSource)> {
    use chrono_tz::America as Am;
    if region == "US" || region == "CA" {
        if let Some(z) = national.get(..3).and_then(nanp_area_zone) {
            return Some((z, TzSource::Number));
        }
        let z = if region == "US" {
            Am::New_York
        } else {
            Am::Toronto
        };
        return Some((z, TzSource::RegionGuess));
    }
    let (zone, multi) = match region {
        "CN" => (chrono_tz::Asia::Shanghai, false),
        "HK" => (chrono_tz::Asia::Hong_Kong, false),
        "MO" => (chrono_tz::Asia::Macau, false),
        "TW" => (chrono_tz::Asia::Taipei, false),
        "SG" => (chrono_tz::Asia::Singapore, false),
        "MY" => (chrono_tz::Asia::Kuala_Lumpur, false),
        "JP" => (chrono_tz::Asia::Tokyo, false),
        "KR" => (chrono_tz::Asia::Seoul, false),
        "TH" => (chrono_tz::Asia::Bangkok, false),
        "VN" => (chrono_tz::Asia::Ho_Chi_Minh, false),
        "PH" => (chrono_tz::Asia::Manila, false),
        "IN" => (chrono_tz::Asia::Kolkata, false),
        "AE" => (chrono_tz::Asia::Dubai, false),
        "SA" => (chrono_tz::Asia::Riyadh, false),
        "IL" => (chrono_tz::Asia::Jerusalem, false),
        "TR" => (chrono_tz::Europe::Istanbul, false),
        "GB" => (chrono_tz::Europe::London, false),
        "IE" => (chrono_tz::Europe::Dublin, false),
        "FR" => (chrono_tz::Europe::Paris, false),
        "DE" => (chrono_tz::Europe::Berlin, false),
        "IT" => (chrono_tz::Europe::Rome, false),
        "ES" => (chrono_tz::Europe::Madrid, false),
        "NL" => (chrono_tz::Europe::Amsterdam, false),
        "BE" => (chrono_tz::Europe::Brussels, false),
        "CH" => (chrono_tz::Europe::Zurich, false),
        "AT" => (chrono_tz::Europe::Vienna, false),
        "SE" => (chrono_tz::Europe::Stockholm, false),
        "NO" => (chrono_tz::Europe::Oslo, false),
        "DK" => (chrono_tz::Europe::Copenhagen, false),
        "FI" => (chrono_tz::Europe::Helsinki, false),
        "PL" => (chrono_tz::Europe::Warsaw, false),
        "PT" => (chrono_tz::Europe::Lisbon, false),
        "GR" => (chrono_tz::Europe::Athens, false),
        "NZ" => (chrono_tz::Pacific::Auckland, false),
        "ZA" => (chrono_tz::Africa::Johannesburg, false),
        "EG" => (chrono_tz::Africa::Cairo, false),
        "NG" => (chrono_tz::Africa::Lagos, false),
        "AR" => (chrono_tz::America::Argentina::Buenos_Aires, false),
        "CL" => (chrono_tz::America::Santiago, false),
        "CO" => (chrono_tz::America::Bogota, false),
        "PE" => (chrono_tz::America::Lima, false),
        "RU" => (chrono_tz::Europe::Moscow, true),
        "AU" => (chrono_tz::Australia::Sydney, true),
        "BR" => (chrono_tz::America::Sao_Paulo, true),
        "MX" => (chrono_tz::America::Mexico_City, true),
        "ID" => (chrono_tz::Asia::Jakarta, true),
        "KZ" => (chrono_tz::Asia::Almaty, true),
        _ => return None,
    };
    Some((
        zone,
        if multi {
            TzSource::RegionGuess
        } else {
            TzSource::Number
        },
    ))
}

/// Zones of the most common North American area codes. Not exhaustive: an
/// unknown code falls back to a flagged regional guess.
fn nanp_area_zone(code: &str) -> Option<Tz> {
    use chrono_tz::America as Am;
    use chrono_tz::Pacific;
    let z = match code {
        // Eastern
        "201" | "202" | "203" | "207" | "212" | "215" | "216" | "239" | "240" | "248" | "267"
        | "301" | "302" | "304" | "305" | "313" | "315" | "321" | "336" | "347" | "352" | "386"
        | "401" | "404" | "407" | "410" | "412" | "413" | "416" | "434" | "440" | "443" | "470"
        | "508" | "513" | "514" | "516" | "518" | "540" | "561" | "585" | "603" | "609" | "610"
        | "613" | "614" | "617" | "631" | "646" | "647" | "678" | "703" | "704" | "716" | "718"
        | "727" | "732" | "757" | "770" | "772" | "781" | "786" | "802" | "803" | "804" | "813"
        | "828" | "843" | "845" | "856" | "857" | "860" | "862" | "864" | "904" | "905" | "908"
        | "910" | "914" | "917" | "919" | "929" | "954" | "973" | "978" | "980" => Am::New_York,
        // Central
        "205" | "210" | "214" | "217" | "218" | "225" | "251" | "254" | "262" | "281" | "309"
        | "312" | "314" | "316" | "318" | "319" | "334" | "337" | "346" | "361" | "402" | "405"
        | "409" | "414" | "417" | "430" | "432" | "469" | "479" | "501" | "504" | "507" | "512"
        | "515" | "563" | "573" | "601" | "608" | "612" | "615" | "618" | "630" | "636" | "651"
        | "662" | "682" | "708" | "712" | "713" | "715" | "737" | "763" | "773" | "779" | "785"
        | "815" | "816" | "817" | "830" | "832" | "847" | "901" | "903" | "913" | "915" | "918"
        | "920" | "936" | "940" | "952" | "956" | "972" | "979" | "204" | "306" => Am::Chicago,
        // Mountain
        "303" | "307" | "385" | "406" | "435" | "505" | "575" | "719" | "720" | "801" | "970"
        | "403" | "587" | "780" => Am::Denver,
        "480" | "520" | "602" | "623" | "928" => Am::Phoenix,
        // Pacific
        "206" | "209" | "213" | "253" | "310" | "323" | "360" | "408" | "415" | "424" | "425"
        | "442" | "503" | "510" | "530" | "541" | "559" | "562" | "619" | "626" | "628" | "650"
        | "657" | "661" | "669" | "702" | "707" | "714" | "725" | "747" | "760" | "775" | "805"
        | "818" | "831" | "858" | "909" | "916" | "925" | "949" | "951" | "971" | "604" | "778"
        | "250" => Am::Los_Angeles,
        "907" => Am::Anchorage,
        "808" => Pacific::Honolulu,
        _ => return None,
    };
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        assert_eq!(
            zone_for("CN", "13812345678"),
            Some((chrono_tz::Asia::Shanghai, TzSource::Number))
        );
        assert_eq!(
            zone_for("US", "4155550123"),
            Some((chrono_tz::America::Los_Angeles, TzSource::Number))
        );
        assert_eq!(
            zone_for("US", "2125550123"),
            Some((chrono_tz::America::New_York, TzSource::Number))
        );
        assert_eq!(
            zone_for("US", "9995550123").map(|z| z.1),
            Some(TzSource::RegionGuess)
        );
        assert_eq!(
            zone_for("AU", "412345678").map(|z| z.1),
            Some(TzSource::RegionGuess)
        );
        assert_eq!(zone_for("ZZ", "1"), None);
    }
}
