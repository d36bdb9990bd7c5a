"""Who is calling and what they may do, for the API and the console alike: principals, credentials, guessing refused."""
