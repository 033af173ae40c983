-- Every statement the store runs, for SQLite and PostgreSQL alike, named and loaded once
-- (queries.py). Parameters are :named. A few marks are filled in by the dialect (dialect.py):
--   {now}      the database's clock in epoch seconds (SQLite: this machine's, as a parameter)
--   {ci}       a function that folds an address for comparison (SQLite: none, the columns are
--              NOCASE; PostgreSQL: lower, as its unique indexes)
--   {greatest} the larger of two values (SQLite: max; PostgreSQL: greatest)
--   {address}  the conflict target of a table unique by address ((address) / ((lower(address))))
-- A name with @sqlite or @postgresql is that database's own form of the statement.

-- count_rows --
SELECT count(*) FROM deliveries WHERE issue = :issue;

-- add_recipient --
INSERT INTO deliveries (issue, address, name, fields, line, listed, created, updated)
VALUES (:issue, :address, :name, :fields, :line, :stamp, :stamp, :stamp)
ON CONFLICT (issue, {address_in_issue}) DO UPDATE SET
    listed = excluded.listed, name = excluded.name, fields = excluded.fields, line = excluded.line,
    state = CASE WHEN deliveries.state IN ('removed', 'held', 'paused') THEN 'pending' ELSE deliveries.state END;

-- mark_removed --
-- Pending (or held, or paused) rows whose address has left the list (it was not listed by this load).
UPDATE deliveries SET state = 'removed', updated = :stamp
 WHERE issue = :issue AND state IN ('pending', 'held', 'paused') AND listed < :stamp;

-- hold --
-- A pending row a run's --where leaves out: listed, neither removed nor sent.
UPDATE deliveries SET state = 'held', updated = :stamp
 WHERE issue = :issue AND {ci}(address) = {ci}(:address) AND state = 'pending';

-- pause --
-- A pending row whose reader paused their mail on the preferences page: listed, neither removed nor sent.
UPDATE deliveries SET state = 'paused', updated = :stamp
 WHERE issue = :issue AND {ci}(address) = {ci}(:address) AND state = 'pending';

-- record_run --
INSERT INTO runs (issue, started, filter) VALUES (:issue, :started, :filter);

-- runs --
SELECT started, filter FROM runs WHERE issue = :issue ORDER BY started;

-- iter_runs --
SELECT issue, started, filter FROM runs ORDER BY started;

-- add_run_once --
INSERT INTO runs (issue, started, filter)
SELECT :issue, :started, :filter
 WHERE NOT EXISTS (SELECT 1 FROM runs WHERE issue = :issue AND started = :started AND filter = :filter);

-- recover_in_flight --
UPDATE deliveries SET state = 'pending', resent = TRUE, updated = {now}, lease_until = 0,
       last_reply = 'in flight when an earlier run stopped'
 WHERE issue = :issue AND state = 'sending' AND lease_until < {now};

-- mark_sent --
UPDATE deliveries SET state = 'sent', message_id = :message_id, last_reply = :reply, updated = :stamp,
       sent_at = :stamp
 WHERE id = :id;

-- mark_deferred --
-- :wait is the backoff in seconds (0: none): the lease column is on the database's clock.
UPDATE deliveries SET state = 'pending', last_reply = :reply, updated = :stamp, resent = resent OR :uncertain,
       lease_until = CASE WHEN :wait > 0 THEN {now} + :wait ELSE 0 END
 WHERE id = :id;

-- mark_failed --
UPDATE deliveries SET state = 'failed', last_reply = :reply, updated = :stamp WHERE id = :id;

-- release --
UPDATE deliveries SET state = 'pending', attempts = {greatest}(attempts - 1, 0), lease_until = 0, updated = :stamp
 WHERE id = :id AND state = 'sending';

-- set_aside_paused --
-- A row claimed and never handed over whose reader paused their mail while the send ran: set
-- aside as a pause at load time sets a pending row ('paused': listed, neither removed nor sent).
UPDATE deliveries SET state = 'paused', attempts = {greatest}(attempts - 1, 0), lease_until = 0, updated = :stamp
 WHERE id = :id AND state = 'sending';

-- counts --
-- Rows per state, and those flagged as resent, in one round trip.
SELECT state, count(*) FROM deliveries WHERE issue = :issue GROUP BY state
UNION ALL
SELECT 'resent', count(*) FROM deliveries WHERE issue = :issue AND resent;

-- suppressed_by_reason --
SELECT coalesce(s.reason, 'no longer suppressed'), count(*) FROM deliveries d
  LEFT JOIN suppressions s ON {ci}(s.address) = {ci}(d.address)
 WHERE d.issue = :issue AND d.state = 'suppressed' GROUP BY 1 ORDER BY 1;

-- pending_suppressed --
SELECT count(*) FROM deliveries d JOIN suppressions s ON {ci}(s.address) = {ci}(d.address)
 WHERE d.issue = :issue AND d.state = 'pending';

-- sendable --
-- The rows a run will send: pending and not on the suppression list (what the pre-flight counts).
SELECT d.address, d.name, d.fields FROM deliveries d
 WHERE d.issue = :issue AND d.state = 'pending'
   AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE {ci}(s.address) = {ci}(d.address))
 ORDER BY d.id;

-- state_of --
SELECT state FROM deliveries WHERE issue = :issue AND {ci}(address) = {ci}(:address);

-- failures --
SELECT address, attempts, last_reply FROM deliveries WHERE issue = :issue AND state = 'failed' ORDER BY id;

-- retry_failed --
UPDATE deliveries SET state = 'pending', updated = :stamp, first_try = 0, lease_until = 0
 WHERE issue = :issue AND state = 'failed';

-- issues --
SELECT issue, min(created) FROM deliveries GROUP BY issue ORDER BY 2 DESC, 1;

-- issues_sent --
-- What the web archive publishes: each issue with a message sent, dated by its first.
SELECT issue, min(sent_at) FROM deliveries WHERE state = 'sent' AND sent_at IS NOT NULL GROUP BY issue;

-- discard_unsent --
-- A send declined at its prompt: the rows its pre-flight loaded and nobody tried.
DELETE FROM deliveries WHERE issue = :issue AND attempts = 0
   AND state IN ('pending', 'suppressed', 'removed', 'held', 'paused');

-- has_rows --
SELECT 1 FROM deliveries WHERE issue = :issue LIMIT 1;

-- forget_send --
DELETE FROM sends WHERE issue = :issue;

-- journal_rows --
SELECT issue, address, name, fields, line, state, attempts, last_reply, message_id, resent, listed, created,
       updated, sent_at, id
  FROM deliveries ORDER BY issue, id;

-- import_row --
INSERT INTO deliveries (issue, address, name, fields, line, state, attempts, last_reply, message_id, resent,
                        listed, created, updated, sent_at, id)
VALUES (:issue, :address, :name, :fields, :line, :state, :attempts, :last_reply, :message_id, :resent,
        :listed, :created, :updated, :sent_at, :id)
ON CONFLICT DO NOTHING;

-- import_row_renumbered --
INSERT INTO deliveries (issue, address, name, fields, line, state, attempts, last_reply, message_id, resent,
                        listed, created, updated, sent_at)
VALUES (:issue, :address, :name, :fields, :line, :state, :attempts, :last_reply, :message_id, :resent,
        :listed, :created, :updated, :sent_at);

-- has_row --
SELECT 1 FROM deliveries WHERE issue = :issue AND {ci}(address) = {ci}(:address);

-- raise_sequence@postgresql --
-- The numbers the store hands out next start above every number kept and every number it handed
-- out before (only raised: a number whose row is gone is never handed out again).
SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest((SELECT max(id) FROM {table}),
       pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass), 1));

-- raise_sequence@sqlite --
-- INTEGER PRIMARY KEY (deliveries) numbers after the largest kept; AUTOINCREMENT (signup
-- requests) keeps the largest ever handed out in sqlite_sequence: nothing to do.
SELECT 1;

-- The suppression list's rows (the rules are in audience/suppressions.py)

-- add_suppression --
INSERT INTO suppressions (address, reason, source, created, note)
VALUES (:address, :reason, :source, :created, :note)
ON CONFLICT DO NOTHING;

-- get_suppression --
SELECT address, reason, source, created, note FROM suppressions WHERE {ci}(address) = {ci}(:address);

-- delete_suppression --
DELETE FROM suppressions WHERE {ci}(address) = {ci}(:address);

-- add_removal --
INSERT INTO suppression_removals (address, reason, source, created, removed, note, entry_note)
VALUES (:address, :reason, :source, :created, :removed, :note, :entry_note);

-- add_removal_once --
INSERT INTO suppression_removals (address, reason, source, created, removed, note, entry_note)
SELECT :address, :reason, :source, :created, :removed, :note, :entry_note
 WHERE NOT EXISTS (SELECT 1 FROM suppression_removals WHERE address = :address AND reason = :reason
                   AND source = :source AND created = :created AND removed = :removed AND note = :note);

-- iter_removals --
SELECT address, reason, source, created, removed, note, entry_note FROM suppression_removals ORDER BY removed;

-- iter_suppressions --
SELECT address, reason, source, created, note FROM suppressions ORDER BY created;

-- count_suppressions --
SELECT count(*) FROM suppressions;

-- Several workers on one send: claims, leases, the shared pace and the hourly cap

-- record_send --
INSERT INTO sends (issue, content_hash, started) VALUES (:issue, :content_hash, {now})
ON CONFLICT (issue) DO NOTHING;

-- replace_send --
-- The send that starts it records its own hash and moment.
INSERT INTO sends (issue, content_hash, started) VALUES (:issue, :content_hash, {now})
ON CONFLICT (issue) DO UPDATE SET content_hash = excluded.content_hash, started = excluded.started;

-- recorded_send --
SELECT content_hash FROM sends WHERE issue = :issue;

-- iter_sends --
SELECT issue, content_hash, started FROM sends ORDER BY started;

-- add_send_once --
-- `store copy`: a send recorded in the target already (its own first send) stays as it is.
INSERT INTO sends (issue, content_hash, started) VALUES (:issue, :content_hash, :started)
ON CONFLICT (issue) DO NOTHING;

-- claim_batch@sqlite --
-- Pending rows whose backoff is over, then rows whose worker's lease expired; each half walks the
-- (issue, state, id) index. One statement, its own transaction: it takes the write lock as it
-- starts (waiting out another writer), so the rows it picks are the rows it marks. Returns
-- journal.CLAIM_RETURNS.
UPDATE deliveries SET
    state = CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                 THEN 'suppressed' ELSE 'sending' END,
    attempts = attempts + CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.address = deliveries.address)
                               THEN 0 ELSE 1 END,
    resent = resent OR state = 'sending',
    last_reply = CASE WHEN state = 'sending' THEN :taken ELSE last_reply END,
    first_try = CASE WHEN first_try = 0 THEN :now ELSE first_try END,
    worker = :worker, lease_until = :now + :lease, updated = :now
WHERE id IN (
    SELECT id FROM (SELECT id FROM deliveries WHERE issue = :issue AND state = 'pending'
                       AND lease_until <= :now ORDER BY id LIMIT :size)
    UNION ALL
    SELECT id FROM (SELECT id FROM deliveries WHERE issue = :issue AND state = 'sending'
                       AND lease_until < :now ORDER BY id LIMIT :size)
    ORDER BY id LIMIT :size
)
RETURNING id, address, name, fields, attempts, last_reply, resent, state = 'suppressed', first_try, :now;

-- claim_batch@postgresql --
-- Pending rows whose backoff is over, and rows whose worker's lease ran out, each picked along the
-- (issue, state, id) index (an OR of the two would scan the table), locked as they are picked.
-- The claim is durable whatever the session says (for_sending turns synchronous commits off):
-- lost in a crash of the server, its rows would come back pending, unflagged, although their
-- messages reached the relay. set_config is volatile, so `marked` is computed for every row.
WITH due AS (
    SELECT id FROM deliveries WHERE issue = :issue AND state = 'pending' AND lease_until <= {now}
     ORDER BY id LIMIT :size FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id FROM deliveries WHERE issue = :issue AND state = 'sending' AND lease_until < {now}
     ORDER BY id LIMIT :size FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT id FROM due UNION ALL SELECT id FROM lapsed) AS both_kinds ORDER BY id LIMIT :size
), marked AS (
    SELECT p.id, EXISTS (SELECT 1 FROM suppressions s WHERE lower(s.address) = lower(d.address)) AS gone,
           set_config('synchronous_commit', 'on', true) AS durable
      FROM picked p JOIN deliveries d ON d.id = p.id
)
UPDATE deliveries d SET
    state = CASE WHEN m.gone THEN 'suppressed' ELSE 'sending' END,
    attempts = d.attempts + CASE WHEN m.gone THEN 0 ELSE 1 END,
    resent = d.resent OR d.state = 'sending',
    last_reply = CASE WHEN d.state = 'sending' THEN :taken ELSE d.last_reply END,
    first_try = CASE WHEN d.first_try = 0 THEN {now} ELSE d.first_try END,
    worker = :worker, lease_until = {now} + :lease, updated = {now}
  FROM marked m WHERE d.id = m.id
RETURNING d.id, d.address, d.name, d.fields, d.attempts, d.last_reply, d.resent, m.gone, d.first_try, {now};

-- outlook --
SELECT count(*), coalesce({greatest}(min(lease_until) - {now}, 0), 0) FROM deliveries
 WHERE issue = :issue AND state IN ('pending', 'sending');

-- in_flight_workers --
SELECT DISTINCT worker FROM deliveries WHERE issue = :issue AND state = 'sending' AND lease_until >= {now}
 ORDER BY worker;

-- expire_worker --
UPDATE deliveries SET lease_until = 0 WHERE issue = :issue AND state = 'sending' AND worker = :worker;

-- record_worker --
INSERT INTO workers (issue, worker, host, pid, sent, started, last_seen)
VALUES (:issue, :worker, :host, :pid, :sent, {now}, {now})
ON CONFLICT (issue, worker) DO UPDATE SET sent = excluded.sent, last_seen = excluded.last_seen;

-- extend_lease --
UPDATE deliveries SET lease_until = {now} + :lease WHERE issue = :issue AND worker = :worker AND state = 'sending';

-- workers --
SELECT worker, host, pid, sent, started, last_seen FROM workers WHERE issue = :issue ORDER BY started;

-- pace --
-- Returns how long to wait before the slot taken.
INSERT INTO pacing (name, next_at) VALUES (:name, {now} + :interval)
ON CONFLICT (name) DO UPDATE SET next_at = {greatest}(pacing.next_at, {now}) + :interval
RETURNING next_at - :interval - {now};

-- forget_slots --
DELETE FROM pacing_log WHERE name = :name AND at <= {now} - 3600;

-- slots_taken --
SELECT count(*), coalesce(min(at) + 3600 - {now}, 0) FROM pacing_log WHERE name = :name;

-- take_slot --
-- A slot in the rolling hour if fewer than :per_hour are taken (run under the name's lock).
INSERT INTO pacing_log (name, at) SELECT :name, {now}
 WHERE (SELECT count(*) FROM pacing_log WHERE name = :name) < :per_hour
RETURNING 1;

-- Signups (signup_log.py holds the rules)

-- add_signup_request --
INSERT INTO signup_requests (address, name, fields, requested, ip, wording, nonce)
VALUES (:address, :name, :fields, :requested, :ip, :wording, :nonce) RETURNING id;

-- add_signup_request_numbered --
INSERT INTO signup_requests (id, address, name, fields, requested, ip, wording, nonce)
VALUES (:id, :address, :name, :fields, :requested, :ip, :wording, :nonce) ON CONFLICT DO NOTHING RETURNING id;

-- get_signup_request --
SELECT id, address, name, fields, requested, ip, wording, nonce FROM signup_requests WHERE id = :id;

-- iter_signup_requests --
SELECT id, address, name, fields, requested, ip, wording, nonce FROM signup_requests ORDER BY id;

-- delete_signup_requests --
DELETE FROM signup_requests WHERE {ci}(address) = {ci}(:address);

-- expire_signup_requests --
DELETE FROM signup_requests WHERE requested < :before;

-- add_signup --
INSERT INTO signups (address, name, fields, requested, request_ip, confirmed, confirm_ip, wording)
VALUES (:address, :name, :fields, :requested, :request_ip, :confirmed, :confirm_ip, :wording)
ON CONFLICT DO NOTHING;

-- replace_signup --
INSERT INTO signups (address, name, fields, requested, request_ip, confirmed, confirm_ip, wording)
VALUES (:address, :name, :fields, :requested, :request_ip, :confirmed, :confirm_ip, :wording)
ON CONFLICT {address} DO UPDATE SET address = excluded.address, name = excluded.name, fields = excluded.fields,
    requested = excluded.requested, request_ip = excluded.request_ip, confirmed = excluded.confirmed,
    confirm_ip = excluded.confirm_ip, wording = excluded.wording;

-- iter_signups --
SELECT address, name, fields, requested, request_ip, confirmed, confirm_ip, wording FROM signups ORDER BY confirmed;

-- count_signup_mails_to --
SELECT count(*) FROM signup_mails WHERE {ci}(address) = {ci}(:address) AND sent > :since;

-- count_signup_mails_from --
SELECT count(*) FROM signup_mails WHERE ip = :ip AND sent > :since;

-- add_signup_mail --
INSERT INTO signup_mails (address, ip, sent) SELECT :address, :ip, :sent
 WHERE NOT EXISTS (SELECT 1 FROM signup_mails WHERE {ci}(address) = {ci}(:address) AND ip = :ip AND sent = :sent);

-- forget_signup_mails --
DELETE FROM signup_mails WHERE sent < :before;

-- iter_signup_mails --
SELECT address, ip, sent FROM signup_mails ORDER BY sent;

-- Bounce reports (bounce_log.py holds the rules)

-- has_bounce_report --
SELECT 1 FROM bounce_reports WHERE fingerprint = :fingerprint;

-- add_bounce_report --
INSERT INTO bounce_reports (address, issue, category, status, diagnostic, action, received, fingerprint, source)
VALUES (:address, :issue, :category, :status, :diagnostic, :action, :received, :fingerprint, :source)
ON CONFLICT DO NOTHING;

-- bounce_reports_about --
SELECT address, issue, category, status, diagnostic, action, received, fingerprint, source FROM bounce_reports
 WHERE {ci}(address) = {ci}(:address) AND category = :category AND received >= :since ORDER BY id;

-- bounce_reports_for_issue --
SELECT address, issue, category, status, diagnostic, action, received, fingerprint, source FROM bounce_reports
 WHERE issue = :issue ORDER BY id;

-- iter_bounce_reports --
SELECT address, issue, category, status, diagnostic, action, received, fingerprint, source FROM bounce_reports
 ORDER BY id;

-- recipient_of_row --
SELECT address, issue FROM deliveries WHERE id = :row LIMIT 1;

-- recipient_of_message --
SELECT address, issue FROM deliveries WHERE message_id = :message_id LIMIT 1;

-- last_mailed --
SELECT address, issue FROM deliveries WHERE {ci}(address) = {ci}(:address) ORDER BY sent_at DESC NULLS LAST LIMIT 1;

-- Readers' preferences (preference_log.py holds the rules): every change, the newest per address current

-- add_preference --
INSERT INTO preferences (address, chosen, topics, paused_until, shown, ip, source)
VALUES (:address, :chosen, :topics, :paused_until, :shown, :ip, :source)
ON CONFLICT DO NOTHING;

-- current_preference --
SELECT address, chosen, topics, paused_until, shown, ip, source FROM preferences
 WHERE {ci}(address) = {ci}(:address) ORDER BY chosen DESC LIMIT 1;

-- readers_paused_since --
-- Readers whose newest change, made at or after :since, pauses their mail now: those a running
-- send sets aside (send/engine.py, honour_pauses).
SELECT p.address FROM preferences p
 WHERE p.chosen >= :since AND p.paused_until > {now}
   AND p.chosen = (SELECT max(q.chosen) FROM preferences q WHERE {ci}(q.address) = {ci}(p.address));

-- current_preferences --
SELECT p.address, p.chosen, p.topics, p.paused_until, p.shown, p.ip, p.source FROM preferences p
 WHERE p.chosen = (SELECT max(q.chosen) FROM preferences q WHERE {ci}(q.address) = {ci}(p.address));

-- iter_preferences --
SELECT address, chosen, topics, paused_until, shown, ip, source FROM preferences ORDER BY chosen;
