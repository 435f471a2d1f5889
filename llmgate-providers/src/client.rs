//! The upstream HTTP client: hyper's pooled client over rustls, with a request builder in the
//! shape the adapters use (`post(url).headers(..).json(..)`).
//!
//! It replaced reqwest on the request path. reqwest wraps the same hyper client in layers a
//! gateway has no use for, and its redirect layer parsed every request's URL twice as a
//! `url::Url` (with IDNA), about 15,000 instructions of a free request's 246,000 at 64
//! clients (docs/benchmarks.md). Here a request is its method, a pre-parsed `Uri`, headers
//! and a body, handed to the pool as they are. Redirects are not followed: a redirected POST
//! is either turned into a GET or sent again, and neither is wanted.
//!
//! When the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, in either
//! case) the requests go through reqwest instead, which honours those and `NO_PROXY` as
//! operators expect; the builder and the response are the same either way.

use std::fmt::Display;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::http::header::{CONTENT_TYPE, USER_AGENT};
use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use futures::Stream;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use llmgate_core::with_causes;
use serde::Serialize;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle time before TCP keepalive probes start (reqwest's default, kept).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

const AGENT: HeaderValue = HeaderValue::from_static(concat!("llmgate/", env!("CARGO_PKG_VERSION")));

/// The variables that name a proxy; reqwest reads the same (and `NO_PROXY`).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// One pool of connections to a provider's upstream (HTTP/1.1, or HTTP/2 where TLS offers it).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    transport: Transport,
}

#[derive(Debug, Clone)]
enum Transport {
    Direct(Box<Pool<HttpsConnector<HttpConnector>, Full<Bytes>>>),
    /// Through the proxies the environment names.
    Proxied(reqwest::Client),
}

impl Client {
    /// A client whose connection attempts give up after `connect_timeout`; certificates are
    /// checked by the system's verifier.
    pub fn new(connect_timeout: Duration) -> Result<Self, String> {
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        let transport = if proxied {
            Transport::Proxied(proxied_client(connect_timeout)?)
        } else {
            Transport::Direct(Box::new(direct_pool(connect_timeout)?))
        };
        Ok(Self { transport })
    }

    pub fn get<U>(&self, uri: U) -> RequestBuilder<'_>
    where
        U: TryInto<Uri>,
        U::Error: Display,
    {
        RequestBuilder::new(self, Method::GET, uri)
    }

    pub fn post<U>(&self, uri: U) -> RequestBuilder<'_>
    where
        U: TryInto<Uri>,
        U::Error: Display,
    {
        RequestBuilder::new(self, Method::POST, uri)
    }
}

fn direct_pool(
    connect_timeout: Duration,
) -> Result<Pool<HttpsConnector<HttpConnector>, Full<Bytes>>, String> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    // Probes on idle connections, as reqwest sent them: a peer or NAT gone during a long
    // stream's silence is found.
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    // The TLS layer above it takes the https:// URLs.
    tcp.enforce_http(false);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|e| format!("cannot load the system's certificate verifier: {e}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Ok(Pool::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(tls))
}

fn proxied_client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .tcp_keepalive(TCP_KEEPALIVE)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// A request being put together; a bad part (a URL, a header) is reported when it is sent.
#[derive(Debug)]
pub(crate) struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    invalid: Option<String>,
}

impl<'a> RequestBuilder<'a> {
    fn new<U>(client: &'a Client, method: Method, uri: U) -> Self
    where
        U: TryInto<Uri>,
        U::Error: Display,
    {
        let (uri, invalid) = match uri.try_into() {
            Ok(uri) => (uri, None),
            Err(e) => (Uri::default(), Some(format!("invalid URL: {e}"))),
        };
        Self {
            client,
            method,
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            invalid,
        }
    }

    /// Set every header of `headers`, replacing those of the same names.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        if self.headers.is_empty() {
            // The usual case, the provider's headers first: no merge.
            self.headers = headers;
            return self;
        }
        let mut last = None;
        for (name, value) in headers {
            match name {
                Some(name) => {
                    self.headers.insert(name.clone(), value);
                    last = Some(name);
                }
                // More values of the header named just before.
                None => {
                    if let Some(name) = &last {
                        self.headers.append(name.clone(), value);
                    }
                }
            }
        }
        self
    }

    /// Set one header, replacing one of the same name.
    pub fn header<N, V>(mut self, name: N, value: V) -> Self
    where
        N: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => {
                self.invalid
                    .get_or_insert_with(|| "a header cannot be sent as given".to_owned());
            }
        }
        self
    }

    /// `body` as JSON, with its content type.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(json) => {
                self.body = Bytes::from(json);
                self.headers
                    .entry(CONTENT_TYPE)
                    .or_insert(HeaderValue::from_static("application/json"));
            }
            Err(e) => {
                self.invalid
                    .get_or_insert_with(|| format!("the body cannot be written as JSON: {e}"));
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Send it and wait for the response head.
    pub async fn send(self) -> Result<Response, ClientError> {
        if let Some(reason) = self.invalid {
            return Err(ClientError::Request(reason));
        }
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request.headers_mut().entry(USER_AGENT).or_insert(AGENT);
        match &self.client.transport {
            Transport::Direct(pool) => match pool.request(request.map(Full::new)).await {
                Ok(response) => Ok(Response(response.map(Body::Direct))),
                Err(error) => Err(ClientError::from_pool(&error)),
            },
            Transport::Proxied(client) => {
                let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                    .map_err(|e| ClientError::Request(with_causes(&e.without_url())))?;
                match client.execute(request).await {
                    Ok(response) => Ok(Response(
                        ::http::Response::from(response).map(Body::Proxied),
                    )),
                    Err(error) => Err(ClientError::from_reqwest(error)),
                }
            }
        }
    }
}

/// An upstream's response, its body not yet read.
#[derive(Debug)]
pub(crate) struct Response(::http::Response<Body>);

impl Response {
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, ClientError> {
        match self.0.into_body().collect().await {
            Ok(body) => Ok(body.to_bytes()),
            Err(error) => Err(ClientError::Body(with_causes(&*error))),
        }
    }

    /// The body as it arrives.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
        BodyDataStream::new(self.0.into_body())
    }
}

/// A body's failure, from either transport.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A response body from either transport.
#[derive(Debug)]
pub(crate) enum Body {
    Direct(Incoming),
    Proxied(reqwest::Body),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Body::Direct(body) => Pin::new(body).poll_frame(cx).map_err(BodyError::from),
            // Its errors may name the URL, whose query may hold a key.
            Body::Proxied(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|error| BodyError::from(error.without_url())),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Direct(body) => body.is_end_stream(),
            Body::Proxied(body) => body.is_end_stream(),
        }
    }
}

/// Why an exchange failed, described without the URL (it may carry a key in its query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientError {
    /// The upstream was not reached in time.
    ConnectTimeout,
    /// The upstream could not be reached.
    Connect(String),
    /// The request could not be built (a bad URL or header).
    Request(String),
    /// The exchange broke after it started.
    Transport(String),
    /// The body broke while it was read.
    Body(String),
}

impl ClientError {
    fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_connect() && error.is_timeout() {
            return ClientError::ConnectTimeout;
        }
        if error.is_connect() {
            return ClientError::Connect(with_causes(&error.without_url()));
        }
        ClientError::Transport(with_causes(&error.without_url()))
    }

    fn from_pool(error: &hyper_util::client::legacy::Error) -> Self {
        if error.is_connect() {
            if caused_by_timeout(error) {
                return ClientError::ConnectTimeout;
            }
            return ClientError::Connect(with_causes(error));
        }
        ClientError::Transport(with_causes(error))
    }
}

impl Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::ConnectTimeout => f.write_str("connecting timed out"),
            ClientError::Connect(detail)
            | ClientError::Request(detail)
            | ClientError::Transport(detail)
            | ClientError::Body(detail) => f.write_str(detail),
        }
    }
}

/// Whether a timeout is among the error's causes (the connector's connect timeout).
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = error.source();
    }
    false
}
