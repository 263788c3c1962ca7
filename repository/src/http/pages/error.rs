//! The error page browsers get instead of a JSON error body
//! (`html::error_page` turns one into the other).

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: String,
    pub message: String,
}
