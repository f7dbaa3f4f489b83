CREATE TABLE `incident_entries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`incident_id` text NOT NULL,
	`kind` text NOT NULL,
	`body` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`incident_id`) REFERENCES `incidents`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `incident_entries_incident` ON `incident_entries` (`incident_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `incident_entries_one_link` ON `incident_entries` (`incident_id`,`kind`,`body`) WHERE kind != 'note';--> statement-breakpoint
CREATE TABLE `incidents` (
	`id` text PRIMARY KEY NOT NULL,
	`title` text NOT NULL,
	`severity` text NOT NULL,
	`description` text NOT NULL,
	`status` text DEFAULT 'open' NOT NULL,
	`opened_by` text NOT NULL,
	`opened_at` integer NOT NULL,
	`closed_by` text,
	`closed_at` integer,
	`summary` text,
	`blast_radius` text,
	`preventive_controls` text
);
--> statement-breakpoint
CREATE INDEX `incidents_status_opened` ON `incidents` (`status`,`opened_at`);--> statement-breakpoint
-- Hand-written: an incident's record cannot be rewritten. Timeline entries are append-only, incidents are never
-- deleted, and a closed incident accepts neither changes nor new entries (the API checks first; these hold even
-- for a racing request or a direct write).
CREATE TRIGGER `incident_entries_no_update` BEFORE UPDATE ON `incident_entries`
BEGIN
  SELECT RAISE(ABORT, 'incident_entries is append-only');
END;
--> statement-breakpoint
CREATE TRIGGER `incident_entries_no_delete` BEFORE DELETE ON `incident_entries`
BEGIN
  SELECT RAISE(ABORT, 'incident_entries is append-only');
END;
--> statement-breakpoint
CREATE TRIGGER `incident_entries_open_only` BEFORE INSERT ON `incident_entries`
WHEN (SELECT `status` FROM `incidents` WHERE `id` = NEW.`incident_id`) IS NOT 'open'
BEGIN
  SELECT RAISE(ABORT, 'incident is closed');
END;
--> statement-breakpoint
CREATE TRIGGER `incidents_no_delete` BEFORE DELETE ON `incidents`
BEGIN
  SELECT RAISE(ABORT, 'incidents are never deleted');
END;
--> statement-breakpoint
CREATE TRIGGER `incidents_closed_final` BEFORE UPDATE ON `incidents` WHEN OLD.`status` = 'closed'
BEGIN
  SELECT RAISE(ABORT, 'a closed incident is final');
END;
