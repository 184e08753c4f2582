"""The Function App: registers the blueprints. Nothing else happens here."""

import azure.durable_functions as df

from activities.check_activities import bp as check_activities
from orchestrators.license_check import bp as license_check
from orchestrators.presence_events import bp as presence_events
from orchestrators.reports import bp as reports
from orchestrators.starters import bp as starters

app = df.DFApp()
app.register_functions(license_check)
app.register_functions(starters)
app.register_functions(check_activities)
app.register_functions(presence_events)
app.register_functions(reports)
