//! The dashboard page and its assets, embedded from `dashboard/` at build
//! time.

use axum::http::header;
use axum::response::IntoResponse;

macro_rules! asset {
    ($name:ident, $path:literal, $mime:literal) => {
        /// Serves an embedded asset.
        pub async fn $name() -> impl IntoResponse {
            (
                [
                    (header::CONTENT_TYPE, $mime),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                include_str!(concat!("../../../dashboard/", $path)),
            )
        }
    };
}

asset!(index, "index.html", "text/html; charset=utf-8");
asset!(app_js, "app.js", "text/javascript; charset=utf-8");
asset!(style_css, "style.css", "text/css; charset=utf-8");
asset!(
    uplot_js,
    "vendor/uplot/uPlot.iife.min.js",
    "text/javascript; charset=utf-8"
);
asset!(
    uplot_css,
    "vendor/uplot/uPlot.min.css",
    "text/css; charset=utf-8"
);
asset!(
    uplot_license,
    "vendor/uplot/LICENSE",
    "text/plain; charset=utf-8"
);
