"""The EC2 front-end: speaks the EC2 Query API and translates it into back-end calls."""
