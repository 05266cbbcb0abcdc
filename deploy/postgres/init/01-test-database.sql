-- Runs once, when the compose Postgres starts on an empty volume: the database `make test` uses by default
-- (STROM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test). Tests create their own schemas inside it.
CREATE DATABASE test;
