//! How the input matrix speaks each protocol: an Execute with its input by reference or by value
//! as WPS 1.0.0 KVP, WPS 1.0.0 XML, WPS 2.0 XML or a JSON job, and what the answers say (the
//! output href, an exception).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use wpsmesh_tests::formats::{Sample, Text};

/// Longest request target (path and query) hyper accepts; longer KVP requests get 414.
const MAX_URI: usize = u16::MAX as usize - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Kvp1,
    Xml1,
    Xml2,
    Json,
}

impl Protocol {
    pub const ALL: [Self; 4] = [Self::Kvp1, Self::Xml1, Self::Xml2, Self::Json];

    pub fn name(self) -> &'static str {
        match self {
            Self::Kvp1 => "kvp1",
            Self::Xml1 => "xml1",
            Self::Xml2 => "xml2",
            Self::Json => "json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Reference,
    Value,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Value => "value",
        }
    }
}

/// One Execute: the sample as INPUT, literal parameters, one OUTPUT.
#[derive(Debug, Clone)]
pub struct Execute<'a> {
    pub algorithm: &'a str,
    pub literals: &'a [(&'a str, &'a str)],
    pub output_mime: &'a str,
    pub sample: &'a Sample,
    /// Where the sample was uploaded.
    pub href: &'a str,
    pub transport: Transport,
    /// The media type declared for INPUT, if any.
    pub mime: Option<&'a str>,
    /// The output in the answer's body (WPS XML only), else as a reference.
    pub raw: bool,
}

impl Execute<'_> {
    /// The HTTP request to the edge at `url`, or why `protocol` cannot carry it.
    pub fn request(
        &self,
        http: &reqwest::Client,
        url: &str,
        protocol: Protocol,
    ) -> Result<reqwest::RequestBuilder, String> {
        let xml = |body: String| {
            http.post(format!("{url}/api/wps"))
                .header("content-type", "application/xml")
                .body(body)
        };
        Ok(match protocol {
            Protocol::Kvp1 => http.get(format!("{url}{}", self.kvp()?)),
            Protocol::Xml1 => xml(self.xml_v1()),
            Protocol::Xml2 => xml(self.xml_v2()),
            Protocol::Json => http.post(format!("{url}/api/wps/jobs")).json(&self.job()),
        })
    }

    /// WPS 1.0.0 KVP (by value: base64, percent-encoded), the output as a reference.
    fn kvp(&self) -> Result<String, String> {
        let mut input = match self.transport {
            Transport::Reference => format!("INPUT=@xlink:href={}", self.href),
            Transport::Value => format!(
                "INPUT={}@encoding=base64",
                percent_encode(&BASE64.encode(self.sample.bytes()))
            ),
        };
        if let Some(mime) = self.mime {
            input.push_str(&format!("@mimeType={mime}"));
        }
        let literals: String = self
            .literals
            .iter()
            .map(|(k, v)| format!(";{k}={v}"))
            .collect();
        let target = format!(
            "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier={}\
             &DataInputs={input}{literals}&ResponseDocument=OUTPUT@asReference=true@mimeType={}",
            self.algorithm, self.output_mime
        );
        if target.len() > MAX_URI {
            return Err(format!(
                "a {} byte request target is over the {MAX_URI} bytes an HTTP server takes",
                target.len()
            ));
        }
        Ok(target)
    }

    fn xml_v1(&self) -> String {
        let (alg, out_mime) = (self.algorithm, self.output_mime);
        let mime = mime_attr(self.mime);
        let input = match self.transport {
            Transport::Reference => {
                format!(r#"<wps:Reference xlink:href="{}"{mime}/>"#, self.href)
            }
            Transport::Value => {
                let (attrs, content) = inline_xml(self.sample, true);
                format!(
                    "<wps:Data><wps:ComplexData{mime}{attrs}>{content}</wps:ComplexData></wps:Data>"
                )
            }
        };
        let literals: String = self
            .literals
            .iter()
            .map(|(k, v)| {
                format!("<wps:Input><ows:Identifier>{k}</ows:Identifier><wps:Data><wps:LiteralData>{v}</wps:LiteralData></wps:Data></wps:Input>")
            })
            .collect();
        let form = if self.raw {
            format!(
                r#"<wps:RawDataOutput mimeType="{out_mime}"><ows:Identifier>OUTPUT</ows:Identifier></wps:RawDataOutput>"#
            )
        } else {
            format!(
                r#"<wps:ResponseDocument><wps:Output asReference="true" mimeType="{out_mime}"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#
            )
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>{alg}</ows:Identifier>
<wps:DataInputs>
<wps:Input><ows:Identifier>INPUT</ows:Identifier>{input}</wps:Input>
{literals}
</wps:DataInputs>
<wps:ResponseForm>{form}</wps:ResponseForm>
</wps:Execute>"#
        )
    }

    fn xml_v2(&self) -> String {
        let (alg, out_mime) = (self.algorithm, self.output_mime);
        let mime = mime_attr(self.mime);
        let input = match self.transport {
            Transport::Reference => {
                format!(r#"<wps:Reference xlink:href="{}"{mime}/>"#, self.href)
            }
            Transport::Value => {
                // Text alone without a media type is a literal in WPS 2.0: base64 then.
                let (attrs, content) = inline_xml(self.sample, self.mime.is_some());
                format!("<wps:Data{mime}{attrs}>{content}</wps:Data>")
            }
        };
        let literals: String = self
            .literals
            .iter()
            .map(|(k, v)| {
                format!(r#"<wps:Input id="{k}"><wps:Data><wps:LiteralValue>{v}</wps:LiteralValue></wps:Data></wps:Input>"#)
            })
            .collect();
        let (response, transmission) = if self.raw {
            ("raw", "value")
        } else {
            ("document", "reference")
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="2.0.0" mode="sync" response="{response}" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>{alg}</ows:Identifier>
<wps:Input id="INPUT">{input}</wps:Input>
{literals}
<wps:Output id="OUTPUT" transmission="{transmission}" mimeType="{out_mime}"/>
</wps:Execute>"#
        )
    }

    /// A JSON job (by value: GeoJSON as an object, XML as a string, binary as base64), the output
    /// as a reference.
    fn job(&self) -> Value {
        let bytes = || self.sample.bytes();
        let mut input = match (self.transport, self.sample.text) {
            (Transport::Reference, _) => json!({"type": "reference", "href": self.href}),
            (Transport::Value, Text::Json) => {
                let doc: Value = serde_json::from_slice(&bytes()).expect("GeoJSON sample");
                json!({"type": "complex", "value": doc})
            }
            (Transport::Value, Text::Xml) => {
                json!({"type": "complex", "value": String::from_utf8_lossy(&bytes())})
            }
            (Transport::Value, Text::Binary) => {
                json!({"type": "complex", "value": BASE64.encode(bytes()), "encoding": "base64"})
            }
        };
        if let Some(mime) = self.mime {
            input["mimeType"] = json!(mime);
        }
        let mut inputs = json!({"INPUT": input});
        for (k, v) in self.literals {
            inputs[*k] = json!({"type": "literal", "value": v});
        }
        json!({
            "identifier": self.algorithm,
            "inputs": inputs,
            "outputs": {"OUTPUT": {"mimeType": self.output_mime, "transmission": "reference"}},
        })
    }
}

/// `mimeType="..."` for an XML element, or nothing.
fn mime_attr(mime: Option<&str>) -> String {
    mime.map(|m| format!(r#" mimeType="{m}""#))
        .unwrap_or_default()
}

/// The sample inline in XML: `(attributes, content)` — elements for XML documents, escaped text
/// for JSON (when `text_ok`), base64 otherwise.
fn inline_xml(sample: &Sample, text_ok: bool) -> (String, String) {
    match sample.text {
        Text::Xml => (String::new(), without_declaration(&sample.bytes())),
        Text::Json if text_ok => (
            String::new(),
            xml_escape(&String::from_utf8_lossy(&sample.bytes())),
        ),
        _ => (
            r#" encoding="base64""#.to_owned(),
            BASE64.encode(sample.bytes()),
        ),
    }
}

/// The output href in a successful answer.
pub fn output_href(protocol: Protocol, body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    let fail = |what: &str| {
        format!(
            "{what}: {}",
            one_line(&text.chars().take(1500).collect::<String>())
        )
    };
    match protocol {
        Protocol::Json => {
            let answer: Value = serde_json::from_slice(body).map_err(|_| fail("not JSON"))?;
            if answer["status"]["status"] != "succeeded" {
                return Err(fail("not succeeded"));
            }
            answer["outputs"]["OUTPUT"]["href"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| fail("no OUTPUT href"))
        }
        Protocol::Kvp1 | Protocol::Xml1 => {
            if !text.contains("<wps:ProcessSucceeded") {
                return Err(fail("not ProcessSucceeded"));
            }
            let outputs = text
                .split("<wps:ProcessOutputs>")
                .nth(1)
                .ok_or_else(|| fail("no ProcessOutputs"))?;
            attribute_after(outputs, "<wps:Reference", "href")
                .ok_or_else(|| fail("no output reference"))
        }
        Protocol::Xml2 => {
            let result = text
                .split("<wps:Result")
                .nth(1)
                .ok_or_else(|| fail("no wps:Result"))?;
            attribute_after(result, "<wps:Reference", "xlink:href")
                .ok_or_else(|| fail("no output reference"))
        }
    }
}

/// The value of attribute `name` in the first `tag` element of `doc`.
fn attribute_after(doc: &str, tag: &str, name: &str) -> Option<String> {
    let element = doc.split(tag).nth(1)?.split('>').next()?;
    let value = element
        .split(&format!(" {name}=\""))
        .nth(1)?
        .split('"')
        .next()?;
    Some(xml_unescape(value))
}

/// An OWS exception (the first of an ExceptionReport) or the JSON job API's `error`.
#[derive(Debug)]
pub struct Exception {
    pub code: String,
    pub locator: String,
    pub text: String,
}

pub fn exception_of(body: &[u8]) -> Option<Exception> {
    if let Ok(answer) = serde_json::from_slice::<Value>(body) {
        let error = answer.get("error")?;
        let field = |name: &str| error[name].as_str().unwrap_or_default().to_owned();
        return Some(Exception {
            code: field("code"),
            locator: field("locator"),
            text: field("message"),
        });
    }
    let doc = String::from_utf8_lossy(body);
    let exception = doc.split("<ows:Exception ").nth(1)?;
    let attribute = |name: &str| {
        exception
            .split('>')
            .next()
            .and_then(|tag| tag.split(&format!("{name}=\"")).nth(1))
            .and_then(|t| t.split('"').next())
            .map(xml_unescape)
            .unwrap_or_default()
    };
    let text = exception
        .split("<ows:ExceptionText>")
        .nth(1)
        .and_then(|t| t.split("</ows:ExceptionText>").next())
        .map(xml_unescape)
        .unwrap_or_default();
    Some(Exception {
        code: attribute("exceptionCode"),
        locator: attribute("locator"),
        text,
    })
}

/// What an error answer says, for failure messages.
pub fn error_of(body: &[u8]) -> String {
    match exception_of(body) {
        Some(e) => format!("{} at {:?}: {}", e.code, e.locator, e.text),
        None => one_line(&String::from_utf8_lossy(&body[..body.len().min(500)])),
    }
}

/// Percent-encodes everything but unreserved characters (for a value inside a KVP list).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// An XML document without its `<?xml ...?>` declaration, to embed.
fn without_declaration(doc: &[u8]) -> String {
    let text = String::from_utf8_lossy(doc);
    let text = text.trim_start();
    match text.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or("", |(_, r)| r)
            .trim()
            .to_owned(),
        None => text.to_owned(),
    }
}

pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
