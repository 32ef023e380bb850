"""What a campaign reports: its status table and its report with figures."""
