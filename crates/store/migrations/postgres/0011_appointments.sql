-- Counter appointments: slots per registration centre with a capacity,
-- and bookings (at most one standing booking per application). A booking
-- takes a seat by a conditional update (`booked < capacity`), so
-- concurrent bookings never overfill a slot.
CREATE TABLE ra_slots (
    centre TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity > 0),
    booked BIGINT NOT NULL DEFAULT 0 CHECK (booked >= 0 AND booked <= capacity),
    PRIMARY KEY (centre, starts_at)
);
CREATE INDEX ra_slots_time ON ra_slots (starts_at);

CREATE TABLE ra_bookings (
    code TEXT PRIMARY KEY,
    reference TEXT NOT NULL REFERENCES ra_applications(reference),
    centre TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (centre, starts_at) REFERENCES ra_slots(centre, starts_at)
);
CREATE UNIQUE INDEX ra_bookings_standing ON ra_bookings (reference) WHERE status = 'booked';
CREATE INDEX ra_bookings_time ON ra_bookings (starts_at) WHERE status = 'booked';
