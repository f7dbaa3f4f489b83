CREATE TABLE `lease_keys` (
	`kid` text PRIMARY KEY NOT NULL,
	`status` text NOT NULL,
	`public_jwk` text NOT NULL,
	`private_sealed` text NOT NULL,
	`certificate` text,
	`cert_expires_at` integer,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`activated_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE INDEX `lease_keys_status` ON `lease_keys` (`status`);--> statement-breakpoint
CREATE TABLE `relay_enrollment_tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`id` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer,
	`relay_id` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `relay_enrollment_tokens_id_unique` ON `relay_enrollment_tokens` (`id`);--> statement-breakpoint
CREATE TABLE `relays` (
	`id` text PRIMARY KEY NOT NULL,
	`ed25519_public_key` text NOT NULL,
	`region` text,
	`public_addr` text,
	`version` text,
	`max_sessions` integer DEFAULT 0 NOT NULL,
	`admin_state` text DEFAULT 'none' NOT NULL,
	`admin_reason` text,
	`admin_state_at` integer,
	`health` text DEFAULT 'dropped' NOT NULL,
	`health_changed_at` integer,
	`last_heartbeat_at` integer,
	`load` real DEFAULT 0 NOT NULL,
	`sessions` integer DEFAULT 0 NOT NULL,
	`counters` text,
	`enrolled_at` integer NOT NULL,
	`enrollment_token_id` text,
	`registered_at` integer,
	`register_count` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `relays_ed25519_public_key_unique` ON `relays` (`ed25519_public_key`);--> statement-breakpoint
CREATE INDEX `relays_selection` ON `relays` (`health`,`admin_state`,`region`);