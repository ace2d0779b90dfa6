//! The live status: real kiosks and the real aggregator publishing each
//! board's and the site's retained status and the alerts, and the Home
//! Assistant discovery that reads them.

mod home_assistant;
mod live;
