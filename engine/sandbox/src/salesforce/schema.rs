//! The sObjects the Salesforce emulator knows (Lead, Contact, Account, Opportunity, Task,
//! Case): their fields and kinds, required fields, defaults and id prefixes.

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Text,
    Email,
    Number,
    Date,
    DateTime,
    Bool,
}

#[derive(Debug)]
pub(super) struct ObjectDef {
    pub(super) name: &'static str,
    pub(super) prefix: &'static str,
    pub(super) required: &'static [&'static str],
    pub(super) fields: &'static [(&'static str, Kind)],
    pub(super) defaults: &'static [(&'static str, &'static str)],
}

pub(super) use Kind::{Bool, Date, DateTime, Email, Number, Text};

pub(super) const SYSTEM_FIELDS: &[(&str, Kind)] = &[
    ("Id", Text),
    ("IsDeleted", Bool),
    ("CreatedDate", DateTime),
    ("CreatedById", Text),
    ("LastModifiedDate", DateTime),
    ("LastModifiedById", Text),
    ("SystemModstamp", DateTime),
];

pub(super) static OBJECTS: &[ObjectDef] = &[
    ObjectDef {
        name: "Lead",
        prefix: "00Q",
        required: &["LastName", "Company"],
        fields: &[
            ("Name", Text),
            ("FirstName", Text),
            ("LastName", Text),
            ("Salutation", Text),
            ("Company", Text),
            ("Title", Text),
            ("Email", Email),
            ("Phone", Text),
            ("MobilePhone", Text),
            ("Fax", Text),
            ("Website", Text),
            ("Status", Text),
            ("LeadSource", Text),
            ("Industry", Text),
            ("Rating", Text),
            ("AnnualRevenue", Number),
            ("NumberOfEmployees", Number),
            ("Description", Text),
            ("Street", Text),
            ("City", Text),
            ("State", Text),
            ("PostalCode", Text),
            ("Country", Text),
            ("OwnerId", Text),
            ("IsConverted", Bool),
            ("HasOptedOutOfEmail", Bool),
            ("DoNotCall", Bool),
        ],
        defaults: &[("Status", "Open - Not Contacted")],
    },
    ObjectDef {
        name: "Contact",
        prefix: "003",
        required: &["LastName"],
        fields: &[
            ("Name", Text),
            ("FirstName", Text),
            ("LastName", Text),
            ("Salutation", Text),
            ("Email", Email),
            ("Phone", Text),
            ("MobilePhone", Text),
            ("HomePhone", Text),
            ("Title", Text),
            ("Department", Text),
            ("AccountId", Text),
            ("LeadSource", Text),
            ("Description", Text),
            ("MailingStreet", Text),
            ("MailingCity", Text),
            ("MailingState", Text),
            ("MailingPostalCode", Text),
            ("MailingCountry", Text),
            ("Birthdate", Date),
            ("OwnerId", Text),
            ("HasOptedOutOfEmail", Bool),
            ("DoNotCall", Bool),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Account",
        prefix: "001",
        required: &["Name"],
        fields: &[
            ("Name", Text),
            ("Type", Text),
            ("Industry", Text),
            ("Phone", Text),
            ("Website", Text),
            ("Description", Text),
            ("AnnualRevenue", Number),
            ("NumberOfEmployees", Number),
            ("BillingStreet", Text),
            ("BillingCity", Text),
            ("BillingState", Text),
            ("BillingPostalCode", Text),
            ("BillingCountry", Text),
            ("AccountNumber", Text),
            ("OwnerId", Text),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Opportunity",
        prefix: "006",
        required: &["Name", "StageName", "CloseDate"],
        fields: &[
            ("Name", Text),
            ("StageName", Text),
            ("CloseDate", Date),
            ("Amount", Number),
            ("AccountId", Text),
            ("ContactId", Text),
            ("Probability", Number),
            ("Type", Text),
            ("LeadSource", Text),
            ("Description", Text),
            ("NextStep", Text),
            ("ForecastCategoryName", Text),
            ("CampaignId", Text),
            ("OwnerId", Text),
        ],
        defaults: &[],
    },
    ObjectDef {
        name: "Task",
        prefix: "00T",
        required: &[],
        fields: &[
            ("Subject", Text),
            ("Status", Text),
            ("Priority", Text),
            ("ActivityDate", Date),
            ("Description", Text),
            ("WhoId", Text),
            ("WhatId", Text),
            ("OwnerId", Text),
            ("Type", Text),
            ("TaskSubtype", Text),
            ("ReminderDateTime", DateTime),
            ("IsReminderSet", Bool),
            ("CallType", Text),
            ("CallDurationInSeconds", Number),
        ],
        defaults: &[("Status", "Not Started"), ("Priority", "Normal")],
    },
    ObjectDef {
        name: "Case",
        prefix: "500",
        required: &[],
        fields: &[
            ("Subject", Text),
            ("Status", Text),
            ("Priority", Text),
            ("Origin", Text),
            ("Type", Text),
            ("Reason", Text),
            ("Description", Text),
            ("ContactId", Text),
            ("AccountId", Text),
            ("SuppliedEmail", Email),
            ("SuppliedName", Text),
            ("SuppliedPhone", Text),
            ("OwnerId", Text),
        ],
        defaults: &[("Status", "New"), ("Priority", "Medium")],
    },
];

pub(super) fn object_def(name: &str) -> Option<&'static ObjectDef> {
    OBJECTS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

impl ObjectDef {
    /// The canonical spelling and kind of a field (custom `__c` fields are text).
    pub(super) fn field(&self, name: &str) -> Option<(String, Kind)> {
        if let Some((n, k)) = SYSTEM_FIELDS
            .iter()
            .chain(self.fields.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some((n.to_string(), *k));
        }
        let custom = name.len() > 3
            && name
                .get(name.len() - 3..)
                .is_some_and(|s| s.eq_ignore_ascii_case("__c"))
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        custom.then(|| (name.to_string(), Text))
    }

    pub(super) fn url(&self, id: &str) -> String {
        format!("/services/data/v62.0/sobjects/{}/{id}", self.name)
    }
}
