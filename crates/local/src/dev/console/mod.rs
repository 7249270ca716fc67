//! The operators' web console: `GET /console` and its assets, and its push, `GET /v1/ops/stream`.
//!
//! The page is plain HTML, CSS and JavaScript modules under `crates/local/console/`, embedded in the
//! binary with `include_str!`: no bundler, no CDN, nothing fetched from anywhere but this server, so
//! it works offline. It asks nothing of the server by polling. It opens one WebSocket,
//! `/v1/ops/stream?token=<operator token>` (`stream` below), and draws what the server pushes: a
//! snapshot of every view whenever something happened, and the watched session's detail with its
//! workflows' graphs.
//!
//! The page itself needs no token (it holds no data); it reads the operator token from its URL's
//! fragment (`/console#token=…`, which `queuematch dev` prints, and which browsers never send to a
//! server) or asks for one.

pub mod stream;
mod views;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use queuematch_handlers::problem::Problem;

/// One embedded file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../../console/index.html"),
};

/// The files under `/console/`, by name.
const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../console/console.js"),
    },
    Asset {
        name: "graph.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../console/graph.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../console/charts.js"),
    },
];

/// Everything the page loads comes from this server, and it runs no inline script: the policy
/// says so, so a page that tried to reach a CDN would fail here as it would offline.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // The page is small and changes with the binary: always revalidate, never stale.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

/// `GET /console`: the page.
pub(super) async fn page() -> Response {
    serve(&INDEX)
}

/// `GET /console/{asset}`: a script or style sheet of the page; 404 for any other name.
pub(super) async fn asset(name: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Response {
    let Ok(Path(name)) = name else {
        return super::routes::problem(Problem::not_found("no such console asset"));
    };
    match ASSETS.iter().chain([&INDEX]).find(|a| a.name == name) {
        Some(asset) => serve(asset),
        None => super::routes::problem(Problem::not_found(format!(
            "no console asset `{name}`; the page is at /console"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_are_served() {
        // Every script and style sheet the page names is one of ASSETS, and none is fetched from
        // elsewhere: the console must work offline.
        for reference in INDEX
            .body
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        {
            let name = reference
                .strip_prefix("/console/")
                .unwrap_or_else(|| panic!("{reference} is not under /console/"));
            assert!(ASSETS.iter().any(|a| a.name == name), "{name} is not served");
        }
        for asset in ASSETS {
            // The one URL allowed is SVG's namespace, which names and fetches nothing.
            for line in asset
                .body
                .lines()
                .map(|l| l.replace("\"http://www.w3.org/2000/svg\"", ""))
            {
                assert!(
                    !line.contains("http://") && !line.contains("https://"),
                    "{}: {line}",
                    asset.name
                );
            }
            if asset.name.ends_with(".js") {
                for import in asset.body.lines().filter(|l| l.starts_with("import ")) {
                    assert!(import.contains("from \"./"), "{}: {import}", asset.name);
                }
            }
        }
    }
}
