-- Listings show the newest requests first, a page at a time. Without these, a listing
-- sorted every request it could see (a full scan once there are tens of thousands):
-- all requests newest first (admins), and one profile's newest first (what an approver
-- sees beside their own requests, which requests_requester already orders).
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_profile_created ON requests (profile, created_at);
